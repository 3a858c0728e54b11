/**
 * `npm run bench [-- scenario...]`: runs benchmark scenarios (all by default), prints a
 * markdown report and writes bench/results/<scenario>.json; bench/RESULTS.md is rebuilt
 * from every result file present. Not part of `npm test`. Editing traces are read from
 * PETALDB_TRACES (see traces.ts).
 *
 * Comparisons run each server in its own process (pinned to another core than this load
 * generator when taskset allows), with a warm-up, several runs, servers interleaved, and
 * report median and spread; ratios are computed from medians of the same run. Each run
 * starts its servers afresh, so the throughput scenarios (fan-out, durable writes) first
 * warm each server with the same load on other documents: a relay runs for days, and its
 * JIT warm-up is not a cost per update.
 *
 * Knobs: BENCH_LOG_LEVEL (the PetalDB relay's log level, default warn), BENCH_TIMEOUT_MS
 * (how long the concurrent-trace scenario waits for convergence, default 120 000) and
 * BENCH_NODE_FLAGS (extra node flags for every server, e.g. `--cpu-prof --cpu-prof-dir=profiles`)
 * and BENCH_RUNS (runs of every comparison after its warm-up, for closer ratios on a noisy machine).
 */
import { cpus, totalmem } from 'node:os'
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'
import { coldLoad, concurrentTrace, durableWrites, fanOut, manyDocuments, tempDataDir, type Figures } from './compare.js'
import { failover, rebalance, writeThroughput } from './cluster-figures.js'
import { openManyIndexedDb, openManySqlite, replicaTrace } from './replica-figures.js'
import { chromiumReplicaTrace, openManyYIndexedDb } from './browser-figures.js'
import { bundleSizes } from './bundle-figures.js'
import { BASELINE, pinLoadGenerator, startServer, type ServerKind } from './servers.js'
import { traceReplay } from './trace-replay.js'
import { httpApi } from './http-figures.js'
import { chainConvergence, nodePeerLatency, tabLatency, webrtcLatency } from './peer-figures.js'
import { postgresFailover, postgresJoin } from './postgres-figures.js'
import { placementFigures } from './placement-figures.js'
import { stopBenchPostgres } from './postgres.js'
import { median } from './stats.js'

interface Comparison {
  kind: 'comparison'
  title: string
  servers: ServerKind[]
  warmups: number
  runs: number
  measure: (kind: ServerKind, dataDir: string) => Promise<Figures>
  /** Target checks on the medians: [description, ratio, passes], or null for a ratio shown for information. */
  targets: (median: (kind: ServerKind, figure: string) => number) => Array<[string, number, boolean | null]>
}

interface FigureSet {
  kind: 'figures'
  title: string
  measure: () => Promise<Record<string, number | string>>
}

/** Starts a fresh server, measures, stops it. */
const onServer = (measure: (server: Awaited<ReturnType<typeof startServer>>, dataDir: string) => Promise<Figures>) =>
  async (kind: ServerKind, dataDir: string): Promise<Figures> => {
    const server = await startServer(kind, dataDir)
    try {
      return await measure(server, dataDir)
    } finally {
      await server.stop()
    }
  }

/**
 * Like {@link onServer}, but measures twice and keeps the second: a relay runs for days, and
 * the JIT warm-up of a fresh server process is not a cost per update. `warmUp`: the first.
 */
const onWarmServer = (measure: (server: Awaited<ReturnType<typeof startServer>>, dataDir: string, warmUp: boolean) => Promise<Figures>) =>
  onServer(async (server, dataDir) => {
    await measure(server, dataDir, true)
    return measure(server, dataDir, false)
  })

const ratio = (a: number, b: number): number => a / b
/** The earlier build named by PETALDB_BASELINE, when set: what a change costs, side by side. */
const withBaseline = (servers: ServerKind[]): ServerKind[] => BASELINE === undefined ? servers : [servers[0]!, 'baseline', ...servers.slice(1)]
const versusBaseline = (what: string, value: () => number): Array<[string, number, null]> =>
  BASELINE === undefined ? [] : [[`(information) ${what} vs the baseline build`, value(), null]]
const atLeast = (what: string, value: number, bound: number): [string, number, boolean] => [what, value, value >= bound]
const atMost = (what: string, value: number, bound: number): [string, number, boolean] => [what, value, value <= bound]

const scenarios: Record<string, Comparison | FigureSet> = {
  'fan-out': {
    kind: 'comparison',
    title: '1. Fan-out: one writer, 50 readers, 10,000 small updates, each server warmed by as many on another document (6. bare ws broadcast = transport ceiling)',
    servers: withBaseline(['petaldb', 'reference', 'hocuspocus', 'bare']),
    warmups: 1,
    runs: 3,
    // Each call writes to a document of its own.
    measure: onWarmServer(server => fanOut(server)),
    targets: m => {
      const throughput = (kind: ServerKind): number => m(kind, 'updates/s to all readers')
      const p99 = (kind: ServerKind): number => m(kind, 'latency p99 (ms)')
      return [
        atLeast('throughput vs reference ≥ 1.5', ratio(throughput('petaldb'), throughput('reference')), 1.5),
        atLeast('throughput vs Hocuspocus ≥ 1.5', ratio(throughput('petaldb'), throughput('hocuspocus')), 1.5),
        atMost('p99 vs reference ≤ 1', ratio(p99('petaldb'), p99('reference')), 1),
        atMost('p99 vs Hocuspocus ≤ 1', ratio(p99('petaldb'), p99('hocuspocus')), 1),
        atLeast('throughput vs bare ws ceiling ≥ 0.5', ratio(throughput('petaldb'), throughput('bare')), 0.5),
        ...versusBaseline('throughput', () => ratio(throughput('petaldb'), throughput('baseline'))),
        ...versusBaseline('p99', () => ratio(p99('petaldb'), p99('baseline'))),
        ...versusBaseline('server CPU per update', () => ratio(m('petaldb', 'server CPU ms per 1,000 updates'), m('baseline', 'server CPU ms per 1,000 updates')))
      ]
    }
  },
  'many-documents': {
    kind: 'comparison',
    title: '2. Many documents: 1,000 documents, 2 clients each, one write per document per second, then idle (bare ws = the floor two idle sockets set)',
    servers: ['petaldb', 'reference', 'hocuspocus', 'bare'],
    warmups: 0,
    runs: 3,
    measure: onServer(server => manyDocuments(server)),
    targets: m => {
      const memory = (kind: ServerKind): number => m(kind, 'live memory per open idle document (KiB)')
      return [
        atMost('memory per open idle document vs reference ≤ 0.5', ratio(memory('petaldb'), memory('reference')), 0.5),
        ['(information) bare ws floor vs reference', ratio(memory('bare'), memory('reference')), null],
        atMost('memory above the bare ws floor vs reference\'s ≤ 0.5', ratio(memory('petaldb') - memory('bare'), memory('reference') - memory('bare')), 0.5)
      ]
    }
  },
  'cold-load': {
    kind: 'comparison',
    title: '3. Cold load: the automerge-paper document on disk, not in memory; connect to synced (the reference server persists nothing: not measured)',
    servers: ['petaldb', 'hocuspocus'],
    warmups: 1,
    runs: 3,
    measure: (kind, dataDir) => coldLoad(kind, dataDir),
    targets: m => [
      atMost('cold load vs Hocuspocus ≤ 0.5', ratio(m('petaldb', 'connect to synced (ms)'), m('hocuspocus', 'connect to synced (ms)')), 0.5)
    ]
  },
  'durable-writes': {
    kind: 'comparison',
    title: '4. Durable writes (PetalDB): 32 native writers, 32 updates in flight each, group commit, the relay warmed by as many on other documents',
    servers: withBaseline(['petaldb']),
    warmups: 1,
    runs: 3,
    measure: onWarmServer((server, dataDir, warmUp) => durableWrites(server, dataDir, warmUp ? 'warm-up' : 'durable')),
    targets: m => [
      atLeast('acked updates/s vs one fdatasync per update ≥ 20', ratio(m('petaldb', 'acked updates/s'), m('petaldb', 'fdatasync/s (same disk)')), 20),
      ...versusBaseline('acked updates/s', () => ratio(m('petaldb', 'acked updates/s'), m('baseline', 'acked updates/s'))),
      ...versusBaseline('server CPU per update', () => ratio(m('petaldb', 'server CPU ms per 1,000 updates'), m('baseline', 'server CPU ms per 1,000 updates')))
    ]
  },
  'concurrent-trace': {
    kind: 'comparison',
    title: '5. Concurrent trace: friendsforever replayed by two clients through the server; an observer checks endContent',
    servers: ['petaldb', 'reference', 'hocuspocus'],
    warmups: 1,
    runs: 3,
    measure: onServer(server => concurrentTrace(server)),
    targets: () => []
  },
  'postgres-durable-writes': {
    kind: 'comparison',
    title: 'Durable writes, one relay on PostgreSQL vs one on SQLite: 32 native writers, 32 updates in flight each, group commit, each relay warmed by as many on other documents (PostgreSQL 15 on the same machine, fsync on)',
    servers: ['petaldb', 'petaldb-postgres'],
    warmups: 1,
    runs: 3,
    measure: onWarmServer((server, dataDir, warmUp) => durableWrites(server, dataDir, warmUp ? 'warm-up' : 'durable')),
    targets: m => [
      ['(information) acked updates/s, PostgreSQL / SQLite', ratio(m('petaldb-postgres', 'acked updates/s'), m('petaldb', 'acked updates/s')), null],
      ['(information) ack latency p50, PostgreSQL / SQLite', ratio(m('petaldb-postgres', 'ack latency p50 (ms)'), m('petaldb', 'ack latency p50 (ms)')), null]
    ]
  },
  'postgres-cold-load': {
    kind: 'comparison',
    title: 'Cold load of the automerge-paper document, one relay on PostgreSQL vs one on SQLite: connect to synced after a restart',
    servers: ['petaldb', 'petaldb-postgres'],
    warmups: 1,
    runs: 3,
    measure: (kind, dataDir) => coldLoad(kind, dataDir),
    targets: m => [['(information) PostgreSQL / SQLite', ratio(m('petaldb-postgres', 'connect to synced (ms)'), m('petaldb', 'connect to synced (ms)')), null]]
  },
  'postgres-failover': { kind: 'figures', title: 'Three relays on one PostgreSQL database: failover over 20 kills (default lease 3 s)', measure: () => postgresFailover(20) },
  'postgres-join': { kind: 'figures', title: 'Three relays on one PostgreSQL database, 1,000 open documents: a fourth relay joins and takes its share', measure: () => postgresJoin(1000) },
  placement: { kind: 'figures', title: 'Load placement: four relays on one PostgreSQL database under a Zipf write load (2,000 documents, s = 1.1), rendezvous alone vs load placement (details in bench/results/placement.md)', measure: placementFigures },
  'http-api': { kind: 'figures', title: 'HTTP document API of one relay: durable POSTs per second (16 writers) and reading automerge-paper as an update and as JSON', measure: httpApi },
  'trace-replay': { kind: 'figures', title: 'automerge-paper through the relay, one stock client, one update per edit', measure: () => traceReplay('automerge-paper') },
  'replica-trace': { kind: 'figures', title: 'automerge-paper through a replica with SqliteStore', measure: replicaTrace },
  'open-1000-sqlite': { kind: 'figures', title: 'Opening 1,000 small documents from SqliteStore', measure: openManySqlite },
  'open-1000-indexeddb': { kind: 'figures', title: 'Opening 1,000 small documents from IndexedDbStore in headless Chromium', measure: openManyIndexedDb },
  'replica-trace-chromium': { kind: 'figures', title: 'automerge-paper in headless Chromium: a replica with IndexedDbStore vs bare Yjs (whole trace) and vs y-indexeddb (first 10,000 edits), and their databases after three reloads', measure: chromiumReplicaTrace },
  'bundle-size': { kind: 'figures', title: 'Client bundle: petaldb + petaldb/browser vs y-websocket + y-indexeddb (esbuild, minified, gzip -9, Yjs external)', measure: bundleSizes },
  'open-1000-y-indexeddb': { kind: 'figures', title: 'Opening 1,000 small documents with y-indexeddb in headless Chromium (one database per document, as it stores them)', measure: openManyYIndexedDb },
  'cluster-failover': { kind: 'figures', title: 'Cluster failover over 20 kills', measure: () => failover(20) },
  'cluster-throughput': { kind: 'figures', title: 'Cluster write throughput vs a single relay', measure: writeThroughput },
  'cluster-rebalance': { kind: 'figures', title: 'Rebalancing 1,000 documents onto a fourth relay', measure: () => rebalance(1000) },
  'p2p-latency': { kind: 'figures', title: 'Edit-to-remote-update latency, two Node replicas: peer to peer vs through a relay (half round trips)', measure: nodePeerLatency },
  'tab-latency': { kind: 'figures', title: 'Edit-to-remote-update latency, two Chromium tabs: BroadcastChannel vs through a relay (half round trips)', measure: tabLatency },
  'webrtc-latency': { kind: 'figures', title: 'Edit-to-remote-update latency, two Chromium contexts: WebRTC (relay stopped) vs through a relay (half round trips)', measure: webrtcLatency },
  'chain-convergence': { kind: 'figures', title: 'friendsforever through a chain of five Node peers, one agent at each end', measure: chainConvergence }
}

const RUNS = process.env.BENCH_RUNS === undefined ? undefined : Number(process.env.BENCH_RUNS)
const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url))
const fmt = (value: number | string): string => typeof value === 'string' ? value : value >= 100 ? value.toFixed(0) : value.toFixed(2)

async function runComparison (name: string, scenario: Comparison): Promise<{ markdown: string, json: unknown }> {
  const samples = new Map<ServerKind, Figures[]>(scenario.servers.map(kind => [kind, []]))
  const failures = new Map<ServerKind, string[]>()
  const runs = RUNS ?? scenario.runs
  for (let run = 0; run < scenario.warmups + runs; run++) {
    // Interleave servers, rotating who goes first.
    const order = scenario.servers.map((_, i) => scenario.servers[(i + run) % scenario.servers.length]!)
    for (const kind of order) {
      const dataDir = tempDataDir()
      try {
        const figures = await scenario.measure(kind, dataDir)
        if (run >= scenario.warmups) samples.get(kind)!.push(figures)
        process.stderr.write(`${name} ${kind} run ${run + 1}${run < scenario.warmups ? ' (warm-up)' : ''}: ${JSON.stringify(figures)}\n`)
      } catch (error) {
        // A failed run is reported, not hidden: it shows as a failure count in the table.
        failures.set(kind, [...(failures.get(kind) ?? []), (error as Error).message])
        process.stderr.write(`${name} ${kind} run ${run + 1} FAILED: ${(error as Error).message}\n`)
      } finally {
        rmSync(dataDir, { recursive: true, force: true })
      }
    }
  }
  const figureNames = [...new Set([...samples.values()].flatMap(runs => runs.flatMap(run => Object.keys(run))))]
  const stats = (kind: ServerKind, figure: string): { median: number, min: number, max: number } => {
    const values = samples.get(kind)!.map(s => s[figure]!)
    return values.length === 0 ? { median: NaN, min: NaN, max: NaN } : { median: median(values), min: Math.min(...values), max: Math.max(...values) }
  }
  const rows = figureNames.map(figure => `| ${figure} | ${scenario.servers.map(kind => {
    const s = stats(kind, figure)
    return Number.isNaN(s.median) ? 'n/a' : `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})`
  }).join(' | ')} |`)
  if (failures.size > 0) rows.push(`| failed runs | ${scenario.servers.map(kind => String(failures.get(kind)?.length ?? 0)).join(' | ')} |`)
  const targets = scenario.targets((kind, figure) => stats(kind, figure).median)
  const markdown = [
    `### ${scenario.title}`,
    '',
    `Median (min–max) of ${runs} runs after ${scenario.warmups} warm-up.`,
    '',
    `| figure | ${scenario.servers.join(' | ')} |`,
    `|---|${scenario.servers.map(() => '---').join('|')}|`,
    ...rows,
    '',
    ...(targets.length === 0 ? [] : ['| target | ratio | met |', '|---|---|---|', ...targets.map(([what, value, met]) => `| ${what} | ${value.toFixed(2)} | ${met === null ? '—' : met ? 'yes' : '**no**'} |`), '']),
    ...[...failures].map(([kind, errors]) => `Failed ${kind} runs: ${errors.join('; ')}\n`)
  ].join('\n')
  const json = { servers: scenario.servers, runs: Object.fromEntries(samples), failures: Object.fromEntries(failures), targets: targets.map(([what, value, met]) => ({ what, ratio: value, met })) }
  return { markdown, json }
}

async function runFigures (scenario: FigureSet): Promise<{ markdown: string, json: unknown }> {
  const figures = await scenario.measure()
  const markdown = [`### ${scenario.title}`, '', '| figure | value |', '|---|---|', ...Object.entries(figures).map(([k, v]) => `| ${k} | ${fmt(v)} |`), ''].join('\n')
  return { markdown, json: figures }
}

const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`
const wanted = process.argv.slice(2)
const unknown = wanted.filter(name => !(name in scenarios))
if (unknown.length > 0) {
  console.error(`unknown scenario(s): ${unknown.join(', ')}; known: ${Object.keys(scenarios).join(', ')}`)
  process.exit(2)
}
mkdirSync(RESULTS_DIR, { recursive: true })
// Scenarios on PostgreSQL share one throwaway server, stopped however the run ends.
try {
  for (const name of wanted.length > 0 ? wanted : Object.keys(scenarios)) {
    const scenario = scenarios[name]!
    // Comparisons pin server and load generator to different cores; figure sets start their own processes unpinned.
    const pinning = pinLoadGenerator(scenario.kind === 'comparison')
    const { markdown, json } = scenario.kind === 'comparison' ? await runComparison(name, scenario) : await runFigures(scenario)
    console.log(markdown)
    writeFileSync(join(RESULTS_DIR, `${name}.json`), JSON.stringify({ scenario: name, date: new Date().toISOString(), machine, pinning, markdown, results: json }, null, 2) + '\n')
  }
} finally {
  await stopBenchPostgres()
}

// Rebuild RESULTS.md from every result file, in scenario order.
const sections = Object.keys(scenarios).flatMap(name => {
  try {
    const result = JSON.parse(readFileSync(join(RESULTS_DIR, `${name}.json`), 'utf8')) as { date: string, machine: string, pinning: string, markdown: string }
    return [`${result.markdown}\n_${result.date.slice(0, 10)}, ${result.machine}; ${result.pinning}._\n`]
  } catch {
    return []
  }
})
writeFileSync(fileURLToPath(new URL('./RESULTS.md', import.meta.url)), [
  '# PetalDB benchmark results',
  '',
  'Written by `npm run bench` (`npm run bench -- <scenario>` for one). Servers: PetalDB\'s relay with',
  'durable storage (SQLite, WAL, synchronous=FULL, group commit; in the postgres-* scenarios PostgreSQL 15',
  'on a throwaway server on the same machine, fsync on, synchronous_commit on); the reference y-websocket server',
  '(@y/websocket-server 0.1.1) and Hocuspocus, both keeping documents in memory only (no',
  'persistence) except Hocuspocus in the cold-load scenario (Database extension, one file per',
  'document); a bare ws broadcast server as the transport ceiling.',
  '',
  ...sections
].join('\n'))
console.error(`results in ${RESULTS_DIR} and bench/RESULTS.md; ${machine}; ${readdirSync(RESULTS_DIR).length} result files`)
process.exit(0)
