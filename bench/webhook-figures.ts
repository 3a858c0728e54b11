/**
 * Figures for a webhook storm, before and after deliveries were queued: a relay process under
 * an open-file limit (`ulimit -n`, 4,096 by default, common for services) with one webhook
 * whose receiver takes 30 s to answer each call (so every call times out after 10 s and is
 * retried); one writer changes 3,000 documents (`POST /v1/docs/<id>`, 16 at a time), and
 * for 25 s from the first change `/healthz` is timed on a new connection every 100 ms, while
 * the relay's open descriptors and memory and the receiver's open connections are sampled.
 * Then an honest stock client connects and syncs, and the receiver answers at once from then
 * on: how long until every document's change was delivered (at most two minutes)? Runs
 * against this tree's build and, when PETALDB_BASELINE names the directory of another build,
 * against that one first.
 *
 *   npm run build && PETALDB_BASELINE=<dir> npx tsx bench/webhook-figures.ts [--docs N] [--fd-limit N] [--answer-ms N]
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import * as Y from 'yjs'
import { CLI_PATH, healthzMs, openFds, startRelayProcess } from '../test/helpers/relay-process.js'
import { stockClient } from '../test/helpers/stock-client.js'

const { values } = parseArgs({ options: { docs: { type: 'string', default: '3000' }, 'fd-limit': { type: 'string', default: '4096' }, 'answer-ms': { type: 'string', default: '30000' } } })
const DOCS = Number(values.docs)
const FD_LIMIT = Number(values['fd-limit'])
const SLOW_ANSWER_MS = Number(values['answer-ms'])
const WINDOW_MS = 25_000
const WRITERS = 16
const DRAIN_TIMEOUT_MS = 120_000

const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))
const round = (n: number): string => Number.isFinite(n) ? n.toFixed(n < 10 ? 1 : 0) : 'n/a'
const latency = (ms: number): string => ms === Infinity ? 'failed' : round(ms)

/** A receiver answering each call after `delayMs` (0 once `fast()`), counting open connections and each document's latest `updatedAt`. */
async function receiver (): Promise<{ url: string, latest: Map<string, number>, calls(): number, peak(): number, fast(): void, close(): Promise<void> }> {
  const latest = new Map<string, number>()
  let delayMs = SLOW_ANSWER_MS
  let calls = 0
  let open = 0
  let peak = 0
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = ''
    req.on('data', chunk => { body += String(chunk) })
    req.on('end', () => {
      calls++
      setTimeout(() => {
        const { docId, updatedAt } = JSON.parse(body) as { docId: string, updatedAt: string }
        latest.set(docId, Math.max(latest.get(docId) ?? 0, Date.parse(updatedAt)))
        res.writeHead(204).end()
      }, delayMs)
    })
  })
  server.on('connection', socket => {
    peak = Math.max(peak, ++open)
    socket.on('close', () => open--)
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    latest,
    calls: () => calls,
    peak: () => peak,
    fast: () => { delayMs = 0 },
    close: () => new Promise(resolve => { server.closeAllConnections(); server.close(() => resolve()) })
  }
}

function statusMb (pid: number, field: string): number {
  try {
    return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024
  } catch {
    return NaN
  }
}

async function storm (cli: string): Promise<Record<string, string>> {
  const dir = mkdtempSync(join(tmpdir(), 'petaldb-webhooks-'))
  const hook = await receiver()
  writeFileSync(join(dir, 'secret'), 'bench-secret\n')
  const relay = await startRelayProcess(join(dir, 'data'), ['--webhook', hook.url, '--webhook-secret-file', join(dir, 'secret'), '--log-level', 'info'], 0, cli, { fdLimit: FD_LIMIT })
  try {
    const pid = relay.child.pid!
    const base = relay.url.replace('ws:', 'http:')
    const quietHealthz = await healthzMs(base, 10_000)
    const fdsBefore = openFds(pid)
    const rssBefore = statusMb(pid, 'VmRSS')
    let peakFds = fdsBefore
    const sampler = setInterval(() => { peakFds = Math.max(peakFds, openFds(pid) || 0) }, 20)

    const started = performance.now()
    const ids = Array.from({ length: DOCS }, (_, i) => `storm/${i}`)
    const sentAt = new Map<string, number>()
    let next = 0
    let refused = 0
    const writing = Promise.all(Array.from({ length: WRITERS }, async () => {
      while (next < ids.length) {
        const id = ids[next++]!
        const doc = new Y.Doc()
        doc.getText('t').insert(0, id)
        sentAt.set(id, Date.now())
        try {
          const response = await fetch(`${base}/v1/docs/${id}`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: new Uint8Array(Y.encodeStateAsUpdate(doc)), signal: AbortSignal.timeout(10_000) })
          await response.arrayBuffer()
          if (response.status !== 200) refused++
        } catch {
          refused++
        }
      }
    })).then(() => performance.now() - started)
    const healthz: number[] = []
    while (performance.now() - started < WINDOW_MS) {
      healthz.push(await healthzMs(base, 10_000))
      await sleep(100)
    }
    const writeMs = await writing
    const honestStarted = performance.now()
    const honest = stockClient(relay.url, 'honest/doc')
    const honestMs = await Promise.race([honest.synced().then(() => performance.now() - honestStarted, () => Infinity), sleep(15_000).then(() => Infinity)])
    honest.destroy()
    clearInterval(sampler)
    const peakRss = statusMb(pid, 'VmHWM')
    const stormCalls = hook.calls()
    const stormPeak = hook.peak()

    hook.fast()
    const drainStarted = performance.now()
    const delivered = (): number => ids.filter(id => (hook.latest.get(id) ?? 0) >= sentAt.get(id)!).length
    while (delivered() < DOCS && performance.now() - drainStarted < DRAIN_TIMEOUT_MS) await sleep(100)
    const drainMs = performance.now() - drainStarted
    const sorted = [...healthz].sort((a, b) => a - b)
    return {
      'documents changed (s)': `${DOCS} in ${round(writeMs / 1000)} s${refused > 0 ? ` (${refused} POSTs failed)` : ''}`,
      'peak concurrent connections to the receiver: storm / whole run': `${stormPeak} / ${hook.peak()}`,
      'relay open fds: idle → peak': `${fdsBefore} → ${peakFds} (limit ${FD_LIMIT})`,
      'relay RSS MB: idle → peak': `${round(rssBefore)} → ${round(peakRss)}`,
      '/healthz ms, quiet': round(quietHealthz),
      '/healthz ms during the storm, p50 / max': `${latency(sorted[Math.floor(sorted.length / 2)]!)} / ${latency(sorted.at(-1)!)}`,
      '/healthz probes failed or over 10 s': `${healthz.filter(ms => ms === Infinity).length} of ${healthz.length}`,
      'honest client connected and synced (ms)': Number.isFinite(honestMs) ? round(honestMs) : 'not within 15 s',
      'calls received until the receiver recovers': String(stormCalls),
      'after the receiver recovers: every latest change delivered': `${delivered()} of ${DOCS} in ${round(drainMs / 1000)} s`,
      'relay alive at the end': String(relay.child.exitCode === null && relay.child.signalCode === null)
    }
  } finally {
    await relay.stop('SIGKILL')
    await hook.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

const builds = [
  ...(process.env.PETALDB_BASELINE === undefined ? [] : [{ name: 'before', cli: join(process.env.PETALDB_BASELINE, 'dist/server/cli.js') }]),
  { name: 'after', cli: CLI_PATH }
]
const results: Array<Record<string, string>> = []
for (const build of builds) {
  const figures = await storm(build.cli)
  process.stderr.write(`${build.name}: ${JSON.stringify(figures)}\n`)
  results.push(figures)
}
console.log([
  `\n### webhook storm: ${DOCS} documents, receiver answering in ${SLOW_ANSWER_MS / 1000} s, ulimit -n ${FD_LIMIT}\n`,
  `| figure | ${builds.map(build => build.name).join(' | ')} |`,
  `|---|${builds.map(() => '---').join('|')}|`,
  ...Object.keys(results.at(-1)!).map(figure => `| ${figure} | ${results.map(result => result[figure] ?? '').join(' | ')} |`)
].join('\n'))
process.exit(0)
