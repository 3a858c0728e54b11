/**
 * Figures for stalled HTTP request bodies, before and after their pace and memory bounds:
 * one address opens 48 `POST /v1/docs/<id>` requests, each declaring 16 MiB (the default
 * largest body) and sending all of it but the last byte, then holds them for 30 s, while the
 * relay process's resident memory is sampled every second and an honest POST from another
 * address is timed. Runs against a relay process built from this tree and, when
 * PETALDB_BASELINE names the directory of another build (a checkout of an earlier commit,
 * built), against that one first. Not part of `npm test` or `npm run bench`; run it on a
 * quiet machine with a gigabyte of memory to spare.
 *
 *   npm run build && PETALDB_BASELINE=<dir> npx tsx bench/http-body-figures.ts [--sockets N] [--seconds S]
 */
import { readFileSync, mkdtempSync, rmSync } from 'node:fs'
import { request } from 'node:http'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as Y from 'yjs'
import { CLI_PATH, startRelayProcess } from '../test/helpers/relay-process.js'

const MiB = 1024 * 1024
const BODY = 16 * MiB
const args = process.argv.slice(2)
const option = (name: string, fallback: number): number => {
  const at = args.indexOf(name)
  return at === -1 ? fallback : Number(args[at + 1])
}
const SOCKETS = option('--sockets', 48)
const SECONDS = option('--seconds', 30)

type Figures = Record<string, string | number>
const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

/** A process's resident memory now, in MB (NaN once it is gone). */
function rssMb (pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024
  } catch {
    return NaN
  }
}

/** A POST from 127.0.0.1 that declares `BODY` bytes and sends all but the last. */
function stalledPost (port: number, index: number, body: Buffer): { destroy(): void, status: () => number | null, closedAt: () => number | null } {
  const socket = connect({ port, host: '127.0.0.1', localAddress: '127.0.0.1' })
  socket.on('error', () => {})
  socket.write(`POST /v1/docs/bench/stalled-${index} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${BODY}\r\n\r\n`)
  socket.write(body)
  let status: number | null = null
  let closedAt: number | null = null
  socket.once('data', (chunk: Buffer) => { status = Number(/^HTTP\/1\.1 (\d{3})/.exec(chunk.toString('latin1'))?.[1] ?? NaN) })
  socket.once('close', () => { closedAt = Date.now() })
  return { destroy: () => socket.destroy(), status: () => status, closedAt: () => closedAt }
}

/** An honest POST of a small update from 127.0.0.2: its status and how long it took. */
function honestPost (port: number): Promise<string> {
  const doc = new Y.Doc()
  doc.getText('t').insert(0, 'honest')
  const body = Y.encodeStateAsUpdate(doc)
  const started = performance.now()
  return new Promise(resolve => {
    const req = request({ host: '127.0.0.1', port, localAddress: '127.0.0.2', method: 'POST', path: '/v1/docs/bench/honest', headers: { 'content-length': body.length }, agent: false, timeout: 10_000 }, res => {
      res.resume()
      res.on('end', () => resolve(`${res.statusCode} in ${(performance.now() - started).toFixed(0)} ms`))
    })
    req.on('timeout', () => req.destroy(new Error('no answer in 10 s')))
    req.on('error', error => resolve(error.message))
    req.end(body)
  })
}

async function stalledBodies (cli: string): Promise<Figures> {
  const dataDir = mkdtempSync(join(tmpdir(), 'petaldb-bodies-'))
  const relay = await startRelayProcess(dataDir, [], 0, cli)
  const pid = relay.child.pid!
  const port = Number(new URL(relay.url).port)
  const body = Buffer.alloc(BODY - 1) // one buffer, written to every socket
  const posts: Array<ReturnType<typeof stalledPost>> = []
  try {
    const idle = rssMb(pid)
    const started = Date.now()
    for (let i = 0; i < SOCKETS; i++) posts.push(stalledPost(port, i, body))
    let peak = idle
    let honest = ''
    const figures: Figures = {}
    for (let second = 1; second <= SECONDS; second++) {
      await sleep(started + second * 1000 - Date.now())
      peak = Math.max(peak, rssMb(pid))
      if (second === 5) honest = await honestPost(port)
      if (second % 10 === 0) figures[`RSS after ${second} s (MB)`] = Math.round(rssMb(pid))
      if (second % 10 === 0) figures[`sockets open after ${second} s`] = posts.filter(post => post.closedAt() === null).length
    }
    const answered = new Map<string, number>()
    for (const post of posts) answered.set(String(post.status() ?? 'none'), (answered.get(String(post.status() ?? 'none')) ?? 0) + 1)
    const closed = posts.flatMap(post => post.closedAt() ?? [])
    return {
      'RSS idle (MB)': Math.round(idle),
      'RSS peak while held (MB)': Math.round(peak),
      ...figures,
      'answers (status × sockets)': [...answered].map(([status, count]) => `${status} × ${count}`).join(', '),
      'last socket closed by the relay after (s)': closed.length === SOCKETS ? ((Math.max(...closed) - started) / 1000).toFixed(1) : `${SOCKETS - closed.length} still open`,
      'honest POST from another address at 5 s': honest
    }
  } finally {
    for (const post of posts) post.destroy()
    await relay.stop()
    rmSync(dataDir, { recursive: true, force: true })
  }
}

const builds = [
  ...(process.env.PETALDB_BASELINE === undefined ? [] : [{ name: 'before', cli: join(process.env.PETALDB_BASELINE, 'dist/server/cli.js') }]),
  { name: 'after', cli: CLI_PATH }
]
const results: Array<[string, Figures]> = []
for (const build of builds) {
  const figures = await stalledBodies(build.cli)
  process.stderr.write(`${build.name}: ${JSON.stringify(figures)}\n`)
  results.push([build.name, figures])
}
const names = [...new Set(results.flatMap(([, figures]) => Object.keys(figures)))]
console.log([
  `\n### ${SOCKETS} stalled bodies of 16 MiB - 1 byte from one address, held ${SECONDS} s\n`,
  `| figure | ${results.map(([name]) => name).join(' | ')} |`,
  `|---|${results.map(() => '---').join('|')}|`,
  ...names.map(name => `| ${name} | ${results.map(([, figures]) => String(figures[name] ?? '')).join(' | ')} |`)
].join('\n'))
process.exit(0)
