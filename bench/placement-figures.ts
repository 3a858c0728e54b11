/**
 * Load placement on four relays sharing one PostgreSQL database (the benchmark's server,
 * fsync on): a Zipf-skewed write load (2,000 documents, s = 1.1, about 1,200 updates/s in
 * all) from real replicas, first with rendezvous hashing alone (`--placement off`), then
 * with load placement at its defaults. Each run has two phases: a random ranking of the
 * documents, then (the hot spot) a new ranking whose six hottest documents share one
 * relay (the one the first ranking loads least). Reports max/mean of the relays' updates/s
 * at the end of each phase, the time to rebalance after the hot spot appears, p99
 * acknowledgement latency of writes made around moves vs the others, and acknowledged
 * writes missing from the database (must be 0). Writes bench/results/placement.md.
 * Knobs: BENCH_SEED (the rankings), BENCH_PLACEMENT_RATE (updates/s),
 * BENCH_PLACEMENT_PHASE_MS (length of a phase), BENCH_PLACEMENT_DEBUG (latency details).
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'
import type * as Y from 'yjs'
import { Replica } from '../client/replica.js'
import { MemoryStore } from '../client/index.js'
import { preferenceList } from '../shared/placement.js'
import { DEFAULT_LEASE_MS } from '../server/postgres/postgres-node.js'
import { DEFAULT_PLACEMENT } from '../server/placement/options.js'
import { inDatabase, startPostgresRelays, type PostgresRelays } from '../test/helpers/postgres-relays.js'
import { prng } from '../test/helpers/prng.js'
import { benchDatabase } from './postgres.js'
import { UNLIMITED } from './servers.js'
import { ascending, percentile, round, withTempDir } from './stats.js'

const IDS = ['r1', 'r2', 'r3', 'r4']
const DOCUMENTS = 2000
const ZIPF_S = 1.1
const RATE = Number(process.env.BENCH_PLACEMENT_RATE ?? 1200)
const PHASE_MS = Number(process.env.BENCH_PLACEMENT_PHASE_MS ?? 40_000)
/** The end of a phase over which relay loads are averaged. */
const MEASURE_MS = 8000
const TICK_MS = 20
/** Writes made from this long before a move to this long after it count as "during moves". */
const AROUND_MOVE_MS = [500, 2000] as const

const homeOf = (docId: string): string => preferenceList(docId, IDS.map(id => ({ id })))[0]!.id

/** Cumulative Zipf weights over ranks 1..n. */
function zipfCumulative (n: number, s: number): number[] {
  const cumulative: number[] = []
  let sum = 0
  for (let rank = 1; rank <= n; rank++) cumulative.push(sum += 1 / rank ** s)
  return cumulative.map(c => c / sum)
}

interface Phase {
  /** max/mean of the relays' updates/s (their published moving averages), averaged over the phase's end. */
  maxOverMean: number
  /** Updates/s of each relay then. */
  rates: number[]
  /** Milliseconds from the phase's start until max/mean stayed at or below 1.25 (null: never). */
  balancedAfterMs: number | null
}

interface Run {
  phases: Phase[]
  moves: Array<{ doc: string, from: string, to: string, at: number, updatesPerSecond: number }>
  /** When each phase started (Date.now()). */
  phaseStarts: number[]
  latency: { steady: number[], aroundMoves: number[] }
  /** Writes made before a move of their document and acknowledged after it. */
  acrossMoves: number
  written: number
  acked: number
  lost: number
  /** CPU used while writing, as a share of one core: by this process (the replicas), and by the four relays together. */
  cpu: { replicas: number, relays: number }
}

/** `promise`, or a rejection saying `why()` after `ms`. */
async function within<T> (ms: number, promise: Promise<T>, why: () => string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  try {
    return await Promise.race([promise, new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(why())), ms) })])
  } finally {
    clearTimeout(timer)
  }
}

/** CPU seconds (user + system) process `pid` has used, from /proc (0 where there is none). */
function cpuSeconds (pid: number | undefined): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return 0
  }
}

/** One run: four relays with `placement` (a --placement spec), two phases of Zipf load. */
async function run (dir: string, name: string, placement: string, rankings: string[][]): Promise<Run> {
  const url = await benchDatabase(join(dir, name))
  const relays: PostgresRelays = await startPostgresRelays(url, IDS, { leaseMs: DEFAULT_LEASE_MS, extraArgs: [...UNLIMITED, '--log-level', 'info', '--placement', placement] })
  const replicas = IDS.map(id => new Replica({ store: new MemoryStore(), relays: [relays.byId(id).url], minReconnectDelayMs: 20, maxReconnectDelayMs: 200 }))
  try {
    const arrays = new Map<string, Y.Array<string>>()
    const writerOf = (docId: string): Replica => replicas[Number(docId.split('/')[1]) % replicas.length]!
    const open = async (docId: string): Promise<Y.Array<string>> => {
      let items = arrays.get(docId)
      if (items === undefined) {
        items = (await writerOf(docId).open(docId)).getArray<string>('items')
        arrays.set(docId, items)
      }
      return items
    }
    // Every document a phase writes is open before it starts (opening is not what is measured).
    for (const docId of new Set(rankings.flatMap(ranking => ranking.slice(0, 400)))) await open(docId)
    await Promise.all([...arrays.keys()].map(docId => writerOf(docId).doc(docId).synced()))
    const cumulative = zipfCumulative(DOCUMENTS, ZIPF_S)
    const random = prng(7)
    const acked = new Map<string, string[]>()
    const writes: Array<Promise<void>> = []
    const latencies: Array<{ docId: string, at: number, ms: number }> = []
    let written = 0
    const write = async (docId: string): Promise<void> => {
      const items = await open(docId)
      const token = `${written++}`
      const at = Date.now()
      const started = performance.now()
      items.push([token])
      await writerOf(docId).doc(docId).durable().then(() => {
        latencies.push({ docId, at, ms: performance.now() - started })
        let tokens = acked.get(docId)
        if (tokens === undefined) acked.set(docId, tokens = [])
        tokens.push(token)
      })
    }
    const sampleRates = async (): Promise<number[]> => Promise.all(relays.relays.map(async relay => {
      const health = await (await fetch(relay.url.replace(/^ws/, 'http') + '/healthz')).json() as { load?: { updatesPerSecond: number } }
      return health.load?.updatesPerSecond ?? 0
    }))
    const phases: Phase[] = []
    const relaysCpu = (): number => relays.relays.reduce((sum, relay) => sum + cpuSeconds(relay.process?.child.pid), 0)
    const cpuBefore = { replicas: process.cpuUsage(), relays: relaysCpu(), at: performance.now() }
    const phaseStarts: number[] = []
    for (const ranking of rankings) {
      phaseStarts.push(Date.now())
      const start = performance.now()
      const samples: Array<{ at: number, rates: number[] }> = []
      let nextSample = start + 500
      let carry = 0
      let last = start
      while (performance.now() - start < PHASE_MS) {
        const tickStart = performance.now()
        carry += RATE * (tickStart - last) / 1000
        last = tickStart
        for (; carry >= 1; carry--) {
          const u = random.next()
          let lo = 0
          let hi = cumulative.length - 1
          while (lo < hi) {
            const mid = (lo + hi) >> 1
            if (cumulative[mid]! < u) lo = mid + 1
            else hi = mid
          }
          writes.push(write(ranking[lo]!))
          // Each write its own update, as from separate users (writes in one microtask would be merged into one).
          await null
        }
        if (performance.now() >= nextSample) {
          nextSample += 500
          samples.push({ at: performance.now() - start, rates: await sampleRates() })
        }
        await new Promise(resolve => setTimeout(resolve, Math.max(0, TICK_MS - (performance.now() - tickStart))))
      }
      const ratio = (rates: number[]): number => Math.max(...rates) / (rates.reduce((a, b) => a + b, 0) / rates.length)
      const end = samples.filter(sample => sample.at >= PHASE_MS - MEASURE_MS)
      const rates = IDS.map((_, i) => end.reduce((sum, sample) => sum + sample.rates[i]!, 0) / end.length)
      // Balanced from the first sample after which every sample is at or below 1.25 (the moving averages need a few seconds to show the new ranking).
      let balancedAfterMs: number | null = null
      for (let i = samples.length - 1; i >= 0 && ratio(samples[i]!.rates) <= 1.25; i--) balancedAfterMs = samples[i]!.at
      phases.push({ maxOverMean: ratio(rates), rates, balancedAfterMs })
    }
    const wall = (performance.now() - cpuBefore.at) / 1000
    const used = process.cpuUsage(cpuBefore.replicas)
    const cpu = { replicas: (used.user + used.system) / 1e6 / wall, relays: (relaysCpu() - cpuBefore.relays) / wall }
    await within(60_000, Promise.all(writes), () => {
      const waiting = [...arrays.keys()].filter(docId => writerOf(docId).doc(docId).pending > 0)
      return `${name}: ${written - latencies.length} writes not acknowledged 60 s after the load stopped, on ${waiting.length} documents: ` +
        waiting.slice(0, 5).map(docId => `${docId} (pending ${writerOf(docId).doc(docId).pending}, peers ${JSON.stringify(writerOf(docId).doc(docId).peers)}, moves ${JSON.stringify(relays.relays.flatMap(relay => (relay.process?.logs ?? []).filter(entry => entry.doc === docId && Number(entry.level) >= 30).map(entry => `${relay.id}: ${String(entry.msg)}`)))})`).join('; ')
    })
    const moves = relays.relays.flatMap(relay => (relay.process?.logs ?? []).filter(entry => entry.msg === 'moving a document by load')
      .map(entry => ({ doc: String(entry.doc), from: relay.id, to: String(entry.to), at: Number(entry.time), updatesPerSecond: Number(entry.updatesPerSecond) })))
    const near = (at: number): boolean => moves.some(move => at >= move.at - AROUND_MOVE_MS[0] && at <= move.at + AROUND_MOVE_MS[1])
    const latency = { steady: latencies.filter(l => !near(l.at)).map(l => l.ms), aroundMoves: latencies.filter(l => near(l.at)).map(l => l.ms) }
    if (process.env.BENCH_PLACEMENT_DEBUG !== undefined) {
      const sorted = ascending(latencies.map(l => l.ms))
      const top = new Set(rankings.flatMap(r => r.slice(0, 400)))
      const q = (values: number[], p: number): string => values.length === 0 ? '-' : percentile(ascending(values), p).toFixed(0)
      console.error(`${name}: latency p50 ${q(sorted, 0.5)} p90 ${q(sorted, 0.9)} p99 ${q(sorted, 0.99)} max ${q(sorted, 1)}; pre-opened p99 ${q(latencies.filter(l => top.has(l.docId)).map(l => l.ms), 0.99)}, opened on first write p99 ${q(latencies.filter(l => !top.has(l.docId)).map(l => l.ms), 0.99)} (${latencies.filter(l => !top.has(l.docId)).length} writes)`)
      const byTime = latencies.filter(l => l.ms > 1000).map(l => l.at - latencies[0]!.at)
      console.error(`${name}: ${byTime.length} writes over 1 s, made at (s) ${[...new Set(byTime.map(t => Math.round(t / 1000)))].join(' ')}`)
    }
    const acrossMoves = moves.reduce((sum, move) => sum + latencies.filter(l => l.docId === move.doc && l.at <= move.at && l.at + l.ms > move.at).length, 0)
    // Every acknowledged write is in the database.
    const stored = await inDatabase(url, [...acked.keys()])
    let lost = 0
    for (const [docId, tokens] of acked) {
      const items = new Set(stored.get(docId)!.getArray<string>('items').toArray())
      lost += tokens.filter(token => !items.has(token)).length
    }
    return { phases, moves, phaseStarts, latency, acrossMoves, cpu, written, acked: [...acked.values()].reduce((sum, tokens) => sum + tokens.length, 0), lost }
  } finally {
    await Promise.all(replicas.map(r => r.close()))
    await relays.stopAll()
  }
}

/** See the module comment. */
export function placementFigures (): Promise<Record<string, number | string>> {
  return withTempDir(async dir => {
    const seed = process.env.BENCH_SEED !== undefined ? Number(process.env.BENCH_SEED) : Math.floor(Math.random() * 2 ** 31)
    console.error(`placement bench: BENCH_SEED=${seed}`)
    const random = prng(seed)
    const docIds = Array.from({ length: DOCUMENTS }, (_, i) => `zipf/${i}`)
    const shuffled = (): string[] => docIds.map(id => ({ id, key: random.next() })).sort((a, b) => a.key - b.key).map(entry => entry.id)
    const first = shuffled()
    // The hot spot: a new ranking whose six hottest documents have one rendezvous home.
    const second = shuffled()
    // On the relay the first ranking loads least under rendezvous: the relay that moved documents away in the first phase may move no more within the minute (see maxMovesPerMinute).
    const weights = zipfCumulative(DOCUMENTS, ZIPF_S).map((c, i, all) => c - (i === 0 ? 0 : all[i - 1]!))
    const shares = new Map(IDS.map(id => [id, 0]))
    first.forEach((docId, rank) => shares.set(homeOf(docId), shares.get(homeOf(docId))! + weights[rank]!))
    const spot = [...shares].sort((a, b) => a[1] - b[1])[0]![0]
    const hottest = second.filter(id => homeOf(id) === spot).slice(0, 6)
    const rankings = [first, [...hottest, ...second.filter(id => !hottest.includes(id))]]
    const alone = await run(dir, 'rendezvous', 'off', rankings)
    const placed = await run(dir, 'placement', '', rankings)
    const p99 = (values: number[]): number => values.length === 0 ? NaN : round(percentile(ascending(values), 0.99), 1)
    const fixed = (value: number): string => value.toFixed(2)
    const balanced = placed.phases[1]!.balancedAfterMs
    const spotMoves = placed.moves.filter(move => move.from === spot)
    const figures: Record<string, number | string> = {
      seed,
      'updates/s offered': RATE,
      'phase length (s)': PHASE_MS / 1000,
      'max/mean, random ranking: rendezvous alone': fixed(alone.phases[0]!.maxOverMean),
      'max/mean, random ranking: with load placement': fixed(placed.phases[0]!.maxOverMean),
      'max/mean, hot spot: rendezvous alone': fixed(alone.phases[1]!.maxOverMean),
      'max/mean, hot spot: with load placement': fixed(placed.phases[1]!.maxOverMean),
      'relay updates/s, hot spot, rendezvous alone': alone.phases[1]!.rates.map(r => r.toFixed(0)).join(' / '),
      'relay updates/s, hot spot, with load placement': placed.phases[1]!.rates.map(r => r.toFixed(0)).join(' / '),
      'time to max/mean ≤ 1.25 after the hot spot appears (s)': balanced === null ? 'not reached' : round(balanced / 1000, 1),
      moves: placed.moves.length,
      'moves away from the hot spot\'s relay': spotMoves.length,
      'documents moved twice': placed.moves.length - new Set(placed.moves.map(move => move.doc)).size,
      'ack p99, steady (ms)': p99(placed.latency.steady),
      'ack p99, writes within 0.5 s before to 2 s after a move (ms)': p99(placed.latency.aroundMoves),
      'ack p99, rendezvous alone (ms)': p99([...alone.latency.steady, ...alone.latency.aroundMoves]),
      'writes made before a move of their document and acknowledged after it': placed.acrossMoves,
      'writes (acknowledged / made), both runs': `${alone.acked + placed.acked} / ${alone.written + placed.written}`,
      'acknowledged writes lost': alone.lost + placed.lost,
      'CPU while writing, replicas / four relays (cores; the machine has 2)': `${placed.cpu.replicas.toFixed(2)} / ${placed.cpu.relays.toFixed(2)}`
    }
    const markdown = [
      '# Load placement: four relays on one PostgreSQL database',
      '',
      `Written by \`npm run bench -- placement\` (${new Date().toISOString().slice(0, 10)}; BENCH_SEED=${seed} replays the rankings).`,
      `A Zipf-skewed write load (${DOCUMENTS} documents, s = ${ZIPF_S}, ${RATE} updates/s offered) from four replicas in the benchmark's`,
      `process, on four relays (lease ${DEFAULT_LEASE_MS} ms) and one PostgreSQL (fsync on), all on this machine. Two runs of two ${PHASE_MS / 1000} s`,
      'phases each: a random ranking of the documents, then a new ranking whose six hottest documents share one relay, the one the first ranking loads least (the hot spot).',
      'First rendezvous hashing alone (`--placement off`), then load placement at its defaults',
      `(ratio ${DEFAULT_PLACEMENT.ratio}, goal ${DEFAULT_PLACEMENT.goalRatio}, min ${DEFAULT_PLACEMENT.minUpdatesPerSecond} updates/s, ${DEFAULT_PLACEMENT.maxMovesPerMinute} moves/min, cooldown ${DEFAULT_PLACEMENT.cooldownMs / 1000} s, average over ${DEFAULT_PLACEMENT.windowMs / 1000} s).`,
      `Relay loads are the relays' published moving averages (/healthz), averaged over the last ${MEASURE_MS / 1000} s of a phase.`,
      '',
      '| figure | value |',
      '|---|---|',
      ...Object.entries(figures).map(([k, v]) => `| ${k} | ${v} |`),
      '',
      'Moves of the run with load placement (from, to, document, its updates/s then, when):',
      '',
      ...placed.moves.sort((a, b) => a.at - b.at).map(move => {
        const phase = placed.phaseStarts.filter(start => start <= move.at).length
        return `- ${move.from} → ${move.to}: ${move.doc} (${move.updatesPerSecond} updates/s), phase ${phase} + ${((move.at - placed.phaseStarts[phase - 1]!) / 1000).toFixed(1)} s`
      }),
      ''
    ].join('\n')
    writeFileSync(fileURLToPath(new URL('./results/placement.md', import.meta.url)), markdown)
    return figures
  })
}
