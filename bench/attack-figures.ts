/**
 * Figures for attacks on a relay, before and after their fixes, side by side: each case runs
 * against a relay process built from this tree and, when PETALDB_BASELINE names the directory
 * of another build (a checkout of an earlier commit, built), against that one in the same run.
 * Attacks speak the y-websocket protocol, which every build serves at ws://host:port/<docId>.
 * Each case ends by itself within about two minutes per build. Not part of `npm test` or
 * `npm run bench`; run one at a time on a quiet machine.
 *
 *   npm run build && PETALDB_BASELINE=<dir> npx tsx bench/attack-figures.ts [--runs N] [case...]
 *
 * Cases: amplification (20 seven-byte state vectors a second for a 1.9 MB document, while a
 * probe times edits on another document), non-readers (40 connections that never read ask
 * three times for a 10 MiB document), awareness (1,000 states of 64 KiB of `[{},{},...]`),
 * slowloris (21,000 half-sent upgrade requests, held by as many child processes as the
 * open-file limit needs, then honest clients from 127.0.0.1 and 127.0.0.2), burst (a stock
 * client's 5,000 transactions in one go), large-document (the default size limit, and a
 * 20 MiB document synced by a client whose maxPayload is just above it), disk-full (the data
 * directory on a 20 MiB tmpfs that fills up; needs root). With `--runs N` every cell lists
 * the N figures, separated by ·.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { pathToFileURL } from 'node:url'
import * as decoding from 'lib0/decoding'
import WebSocket from 'ws'
import * as Y from 'yjs'
import { decodeYMessage, encodeAwarenessMessage, encodeQueryAwareness, encodeSyncStep1 } from '../shared/wire/y-messages.js'
import { encodeAwarenessEntries } from '../shared/wire/awareness.js'
import { prng } from '../test/helpers/prng.js'
import { CLI_PATH } from '../test/helpers/relay-process.js'
import { stockClient, type StockClient } from '../test/helpers/stock-client.js'
import { sendUpdates } from '../test/helpers/update-sender.js'
import { sleep, until, within } from './waiting.js'

type Figures = Record<string, string | number>
const MiB = 1024 * 1024

interface ChildRelay {
  url: string
  pid: number
  exited: Promise<number | string>
  alive(): boolean
  cpuSeconds(): number
  /** Resident memory now, in MB (VmRSS), or NaN once the process is gone. */
  rssMb(): number
  /** Peak resident memory, in MB (VmHWM): the last figure read while the process lived. */
  peakRssMb(): number
  /** Updates committed so far (from the debug log). */
  committed(): number
  /** Whether a log line matching `pattern` appears within `timeoutMs`. */
  logged(pattern: RegExp, timeoutMs: number): Promise<boolean>
  /** SIGTERM, then SIGKILL if it has not exited after 5 s. */
  stop(): Promise<void>
}

/** Relays started by the case running now, stopped when it ends, however it ends. */
const running = new Set<ChildRelay>()

/** A relay process from `cli` (the same helper as in integrity-figures.ts, which exports nothing). */
async function startRelayAt (cli: string, dataDir: string, flags: string[] = []): Promise<ChildRelay> {
  const child: ChildProcess = spawn(process.execPath, [cli, 'relay', '--port', '0', '--data', dataDir, '--log-level', 'debug', ...flags], { stdio: ['ignore', 'pipe', 'pipe'] })
  const lines: string[] = []
  const waiters = new Set<(line: string) => void>()
  let committed = 0
  createInterface({ input: child.stderr! }).on('line', line => {
    if (line.includes('"msg":"commit"')) committed += (JSON.parse(line) as { updates: number }).updates
    else if (lines.length < 1000) lines.push(line)
    for (const waiter of waiters) waiter(line)
  })
  let gone = false
  const exited = new Promise<number | string>(resolve => child.once('exit', (code, signal) => { gone = true; resolve(code ?? signal ?? 'exited') }))
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', line => {
      const match = /listening on (ws:\/\/\S+)/.exec(line)
      if (match !== null) resolve(match[1]!)
    })
    void exited.then(code => reject(new Error(`relay exited with ${code} before listening: ${lines.slice(-2).join(' ')}`)))
  })
  const status = (field: string): number => {
    try {
      return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]) / 1024
    } catch {
      return NaN
    }
  }
  let peak = 0
  const relay: ChildRelay = {
    url,
    pid: child.pid!,
    exited,
    alive: () => !gone,
    cpuSeconds: () => {
      const fields = readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
      return (Number(fields[11]) + Number(fields[12])) / 100
    },
    rssMb: () => status('VmRSS'),
    peakRssMb: () => {
      const now = status('VmHWM')
      if (!Number.isNaN(now)) peak = Math.max(peak, now)
      return peak
    },
    committed: () => committed,
    logged: (pattern, timeoutMs) => new Promise(resolve => {
      if (lines.some(line => pattern.test(line))) return resolve(true)
      const timer = setTimeout(() => { waiters.delete(waiter); resolve(false) }, timeoutMs)
      const waiter = (line: string): void => {
        if (!pattern.test(line)) return
        clearTimeout(timer)
        waiters.delete(waiter)
        resolve(true)
      }
      waiters.add(waiter)
    }),
    stop: async () => {
      running.delete(relay)
      if (gone) return
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
      await exited
      clearTimeout(timer)
    }
  }
  running.add(relay)
  return relay
}

// ---------------------------------------------------------------------------------------
// Small tools

const ms = (value: number): string => Number.isFinite(value) ? value.toFixed(1) : 'n/a'
const mb = (value: number): string => Number.isFinite(value) ? String(Math.round(value)) : 'n/a'
const quote = (text: string): string => JSON.stringify(text.slice(0, 40))
const percentile = (sorted: number[], p: number): number => sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)] ?? NaN


/** Sends `updates` to `docId` on a fresh socket: 'stored', 'closed <code>' or 'no answer'. */
async function send (url: string, docId: string, updates: Uint8Array[]): Promise<string> {
  try {
    const answer = await sendUpdates(url, docId, updates, 60_000)
    return answer === 'stored' ? answer : `closed ${answer.code}`
  } catch {
    return 'no answer'
  }
}

/** A raw y-websocket connection, open, with errors swallowed (close codes are what counts). */
async function rawSocket (url: string, docId: string, options: WebSocket.ClientOptions = {}): Promise<WebSocket> {
  const ws = new WebSocket(`${url}/${docId}`, options)
  ws.on('error', () => {})
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('close', code => reject(new Error(`closed ${code} before opening`)))
  })
  return ws
}

/** Resolves once a sync step 2 arrives on `ws` (the relay handles a connection's frames in order), or with the close code. */
function stepTwo (ws: WebSocket, timeoutMs: number): Promise<string> {
  return within(new Promise(resolve => {
    ws.on('message', (data: Buffer) => { if (data[0] === 0 && data[1] === 1) resolve('answered') })
    ws.once('close', code => resolve(`closed ${code}`))
  }), timeoutMs, 'no answer')
}

/** Whether a fresh stock client syncs another document within 5 s. */
async function serving (url: string): Promise<boolean> {
  const client = stockClient(url, `bench/alive-${Date.now()}`)
  const synced = await within(client.synced().then(() => true, () => false), 5000, false)
  client.destroy()
  return synced
}

/** A stock client's view after syncing for at most `timeoutMs`, with the first close code it saw. */
async function freshView (url: string, docId: string, timeoutMs = 5000): Promise<string> {
  const client = stockClient(url, docId)
  let closed: number | null = null
  client.provider.on('connection-close', event => { closed ??= event?.code ?? null })
  const synced = await within(client.synced().then(() => true, () => false), timeoutMs, false)
  const view = synced ? quote(client.text.toString()) : `not synced${closed === null ? '' : ` (closed ${closed})`}`
  client.destroy()
  return view
}

let edited: Uint8Array | null = null
/** A 1.9 MB document of about 100,000 random small edits (inserts of 1 to 8 characters, deletions of 1 to 3) by one client: diffing it takes about 40 ms. */
function editedDocument (): Uint8Array {
  if (edited !== null) return edited
  const doc = new Y.Doc()
  doc.clientID = 1
  const text = doc.getText('t')
  const random = prng(1)
  while (Y.encodeStateAsUpdate(doc).length < 1_900_000) {
    for (let i = 0; i < 1000; i++) {
      if (text.length > 10 && random.next() < 0.2) text.delete(random.int(text.length - 3), 1 + random.int(3))
      else text.insert(random.int(text.length + 1), 'abcdefgh'.slice(0, 1 + random.int(8)))
    }
  }
  return (edited = Y.encodeStateAsUpdate(doc))
}

/** An update inserting `bytes` characters at the end of `doc`'s text (as a new update since its last state). */
function append (doc: Y.Doc, bytes: number): Uint8Array {
  const before = Y.encodeStateVector(doc)
  doc.getText('t').insert(doc.getText('t').length, 'x'.repeat(bytes))
  return Y.encodeStateAsUpdate(doc, before)
}

/** Edit-to-echo latencies on `docId`: a writer inserts a character, a reader on the same document sees it; one edit every 50 ms. */
async function echoProbe (url: string, docId: string): Promise<{ measure(done: () => boolean): Promise<number[]>, destroy(): void }> {
  const writer = stockClient(url, docId)
  const reader = stockClient(url, docId)
  await Promise.all([writer.synced(), reader.synced()])
  return {
    async measure (done) {
      const times: number[] = []
      while (!done()) {
        const started = performance.now()
        const echoed = new Promise<void>(resolve => {
          const seen = (): void => { reader.doc.off('update', seen); resolve() }
          reader.doc.on('update', seen)
        })
        writer.text.insert(0, 'p')
        if (await within(echoed.then(() => true), 30_000, false)) times.push(performance.now() - started)
        else times.push(Infinity)
        await sleep(50)
      }
      return times.sort((a, b) => a - b)
    },
    destroy () {
      writer.destroy()
      reader.destroy()
    }
  }
}

/** The soft limit of open files of this process (children inherit it). */
function openFileLimit (): number {
  const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find(row => row.startsWith('Max open files'))!
  return Number(line.split(/\s+/)[3])
}

/**
 * A child process holding `count` half-sent upgrade requests to 127.0.0.1:`port` (200 being
 * opened at a time). It prints one JSON line when every socket is connected or failed, and
 * another, with how many the relay dropped within 1 s of connecting, when its stdin ends.
 */
const HALF_SENDER = `
import { connect } from 'node:net'
const [port, count] = process.argv.slice(-2).map(Number)
const request = 'GET /bench/slow HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\n'
const sockets = []
let connected = 0, failed = 0, droppedWithin1s = 0, closed = 0
const one = () => new Promise(resolve => {
  const socket = connect(port, '127.0.0.1')
  sockets.push(socket)
  let at = 0
  socket.setTimeout(10000, () => { if (at === 0) socket.destroy() })
  socket.on('connect', () => { at = Date.now(); connected++; socket.write(request); resolve() })
  socket.on('error', () => {})
  socket.on('close', () => {
    if (at === 0) { failed++; return resolve() }
    closed++
    if (Date.now() - at < 1000) droppedWithin1s++
  })
})
let next = 0
await Promise.all(Array.from({ length: 200 }, async () => { while (next++ < count) await one() }))
console.log(JSON.stringify({ connected, failed }))
process.stdin.resume()
process.stdin.on('end', () => {
  console.log(JSON.stringify({ connected, failed, droppedWithin1s, closed }))
  for (const socket of sockets) socket.destroy()
  process.exit(0)
})
`

interface HalfSender { ready: Promise<{ connected: number, failed: number }>, finish(): Promise<{ connected: number, failed: number, droppedWithin1s: number, closed: number }>, child: ChildProcess }

function halfSender (port: number, count: number): HalfSender {
  const child = spawn(process.execPath, ['--input-type=module', '-e', HALF_SENDER, String(port), String(count)], { stdio: ['pipe', 'pipe', 'inherit'] })
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]()
  const nextLine = async <T>(): Promise<T> => JSON.parse((await lines.next()).value as string) as T
  const ready = nextLine<{ connected: number, failed: number }>()
  return {
    child,
    ready,
    finish: async () => {
      await ready
      child.stdin!.end()
      return await nextLine()
    }
  }
}

/** Milliseconds until a WebSocket from `localAddress` opens (trying again 250 ms after each failure), or null after `timeoutMs`. */
async function connectTime (url: string, localAddress: string, timeoutMs: number): Promise<number | null> {
  const started = performance.now()
  for (let left = timeoutMs; left > 0; left = timeoutMs - (performance.now() - started)) {
    const ws = new WebSocket(`${url}/bench/honest`, { localAddress, handshakeTimeout: Math.ceil(left) })
    ws.on('error', () => {})
    const opened = await new Promise<boolean>(resolve => {
      ws.once('open', () => resolve(true))
      ws.once('close', () => resolve(false))
    })
    ws.terminate()
    if (opened) return performance.now() - started
    await sleep(250)
  }
  return null
}

/** What a build's native replica module offers (the same in every build measured). */
interface NativeReplica {
  open(docId: string): Promise<Y.Doc>
  doc(docId: string): { readonly pending: number, durable(): Promise<void> }
  close(): Promise<void>
}
interface ClientModule {
  Replica: new (options: Record<string, unknown>) => NativeReplica
  MemoryStore: new () => unknown
}
/** The build's own native replica (its native protocol differs between builds). */
async function nativeReplica (cli: string, url: string): Promise<NativeReplica> {
  const client = await import(pathToFileURL(join(dirname(cli), '../client/index.js')).href) as ClientModule
  return new client.Replica({ store: new client.MemoryStore(), relays: [url], WebSocket, minReconnectDelayMs: 10, maxReconnectDelayMs: 200 })
}

/** Fills the file system holding `file` to its last byte: writes to it fail from then on. */
function fill (file: string): void {
  for (let size = 4 * MiB; size >= 1;) {
    try {
      writeFileSync(file, Buffer.alloc(size), { flag: 'a' })
    } catch {
      size = Math.floor(size / 2)
    }
  }
}

// ---------------------------------------------------------------------------------------
// Cases

const cases: Record<string, (cli: string, dataDir: string) => Promise<Figures>> = {
  async amplification (cli, dataDir) {
    const relay = await startRelayAt(cli, dataDir)
    const document = editedDocument()
    const loaded = await send(relay.url, 'bench/large', [document])
    const probe = await echoProbe(relay.url, 'bench/probe')
    const quietUntil = performance.now() + 3000
    const quiet = await probe.measure(() => performance.now() > quietUntil)
    // One attacker connection: 20 step 1 a second for 10 s, each with a state vector
    // { 5: 200 + i } (7 bytes in all): client 5 is not in the document, so the answer is all of it.
    const attacker = await rawSocket(relay.url, 'bench/large', { maxPayload: 64 * MiB })
    let answers = 0
    let answeredBytes = 0
    let closed: number | null = null
    attacker.on('message', (data: Buffer) => { if (data[0] === 0 && data[1] === 1) { answers++; answeredBytes += data.length } })
    attacker.once('close', code => { closed = code })
    const requests = Array.from({ length: 200 }, (_, i) => encodeSyncStep1(Y.encodeStateVector(new Map([[5, 200 + i]]))))
    if (requests.some(request => request.length !== 7)) throw new Error('requests are not 7 bytes long')
    const cpuAtStart = relay.cpuSeconds()
    const startedAt = performance.now()
    let sent = 0
    const flood = setInterval(() => {
      if (attacker.readyState === WebSocket.OPEN) attacker.send(requests[sent]!)
      if (++sent === requests.length) clearInterval(flood)
    }, 50)
    const attacked = await probe.measure(() => sent === 200)
    await until(() => answers >= sent || closed !== null, 20_000)
    const cpu = relay.cpuSeconds() - cpuAtStart
    const window = (performance.now() - startedAt) / 1000
    const attackerClosed = closed
    probe.destroy()
    attacker.terminate()
    await relay.stop()
    return {
      'document (bytes)': document.length,
      'document loaded': loaded,
      'requests sent / answered': `${sent} / ${answers}`,
      'answer bytes (MB)': mb(answeredBytes / 1e6),
      'attacker closed': attackerClosed ?? 'no',
      'probe echo p50 / p99, no attack (ms)': `${ms(percentile(quiet, 0.5))} / ${ms(percentile(quiet, 0.99))}`,
      'probe echo p50 / p99, during the attack (ms)': `${ms(percentile(attacked, 0.5))} / ${ms(percentile(attacked, 0.99))}`,
      'probe edits during the attack': attacked.length,
      'attack, from the first request to the last answer (s)': window.toFixed(1),
      'relay CPU in that time (s)': cpu.toFixed(2)
    }
  },

  async 'non-readers' (cli, dataDir) {
    const relay = await startRelayAt(cli, dataDir)
    const doc = new Y.Doc()
    const loaded = await send(relay.url, 'bench/ten', [append(doc, 10 * MiB)])
    const rssBefore = relay.rssMb()
    const sampler = setInterval(() => relay.peakRssMb(), 200)
    const readers = await Promise.all(Array.from({ length: 40 }, async () => {
      const ws = await rawSocket(relay.url, 'bench/ten')
      ;(ws as unknown as { _socket: { pause(): void } })._socket.pause()
      for (let i = 0; i < 3; i++) ws.send(new Uint8Array([0, 0, 1, 0])) // step 1, empty state vector: all of it
      return ws
    }))
    let dropped = 0
    for (const ws of readers) ws.once('close', () => { dropped++ })
    // The relay encodes and queues the answers within seconds; watch it for 10 s.
    await Promise.race([sleep(10_000), relay.exited])
    clearInterval(sampler)
    const peak = relay.peakRssMb()
    const up = relay.alive() && await serving(relay.url)
    const droppedByRelay = dropped
    for (const ws of readers) ws.terminate()
    await relay.stop()
    return {
      'document loaded': loaded,
      'relay RSS before (MB)': mb(rssBefore),
      'relay peak RSS (MB)': mb(peak),
      'non-readers dropped by the relay (of 40)': droppedByRelay,
      'relay up and serving': String(up)
    }
  },

  async awareness (cli, dataDir) {
    const relay = await startRelayAt(cli, dataDir)
    const state = JSON.parse(`[${Array.from({ length: Math.floor((64 * 1024 - 2) / 3) }, () => '{}').join(',')}]`) as unknown
    const stateBytes = JSON.stringify(state).length
    // One connection, paced at 100 entries every 250 ms (25.6 MB/s, within its byte budget
    // of 32 MiB/s): several connections would each be sent the others' entries, and a
    // connection joining late all of them at once (past the slow-reader bound), which
    // measures send buffers, not the states the relay holds.
    const rssBefore = relay.rssMb()
    const sampler = setInterval(() => relay.peakRssMb(), 200)
    const ws = await rawSocket(relay.url, 'bench/presence')
    for (let clientId = 1; clientId <= 1000; clientId++) {
      ws.send(encodeAwarenessMessage(encodeAwarenessEntries([{ clientId, clock: 1, state }])))
      if (clientId % 100 === 0) await sleep(250)
    }
    const answered = stepTwo(ws, 60_000)
    ws.send(encodeSyncStep1(new Uint8Array([0])))
    const answer = await answered
    await sleep(2000) // let the heap settle before reading the figure
    clearInterval(sampler)
    const settled = relay.rssMb()
    const peak = relay.peakRssMb()
    const up = relay.alive() && await serving(relay.url)
    // Then ask for every state, to count what the relay holds (the answer is one 64 MB frame).
    const held = within(new Promise<number>(resolve => {
      ws.on('message', (data: Buffer) => {
        const message = decodeYMessage(new Uint8Array(data))
        if (message.type === 'awareness') resolve(decoding.readVarUint(decoding.createDecoder(message.update)))
      })
    }), 20_000, NaN)
    ws.send(encodeQueryAwareness())
    const entries = await held
    ws.terminate()
    await relay.stop()
    return {
      'entries sent (bytes of JSON each)': `1000 (${stateBytes})`,
      'sync step 1 after the entries': answer,
      'entries the relay holds (asked after the figures)': entries,
      'relay RSS before (MB)': mb(rssBefore),
      'relay RSS growth, settled (MB)': mb(settled - rssBefore),
      'relay peak RSS (MB)': mb(peak),
      'relay up and serving': String(up)
    }
  },

  async slowloris (cli, dataDir) {
    const relay = await startRelayAt(cli, dataDir)
    const port = Number(new URL(relay.url).port)
    // Every process, the relay's included, may open this many files; the attack is spread
    // over as many processes as it needs to reach 21,000 sockets.
    const limit = openFileLimit()
    const perProcess = limit - 200
    const total = 21_000
    const processes = Math.ceil(total / perProcess)
    const senders = Array.from({ length: processes }, (_, i) => halfSender(port, Math.floor(total / processes) + (i < total % processes ? 1 : 0)))
    try {
      const ready = await within(Promise.all(senders.map(sender => sender.ready)), 90_000, null)
      let relayFiles = NaN
      try {
        relayFiles = readdirSync(`/proc/${relay.pid}/fd`).length
      } catch {}
      const [local, other] = await Promise.all([connectTime(relay.url, '127.0.0.1', 60_000), connectTime(relay.url, '127.0.0.2', 60_000)])
      const up = relay.alive()
      const reports = await Promise.all(senders.map(sender => within(sender.finish(), 10_000, null)))
      const sum = (field: 'connected' | 'failed' | 'droppedWithin1s'): number => reports.reduce((total, report) => total + (report?.[field] ?? 0), 0)
      await relay.stop()
      return {
        'open-file limit (per process)': limit,
        'half-sent requests (attacking processes)': `${total} (${processes})`,
        'attack sockets connected / failed to connect': ready === null ? 'not ready within 90 s' : `${sum('connected')} / ${sum('failed')}`,
        'relay open files with the attack in place': relayFiles,
        'attack sockets dropped within 1 s of connecting': sum('droppedWithin1s'),
        'honest client from 127.0.0.1, connected after (ms from the attack in place)': local === null ? 'failed for 60 s' : ms(local),
        'honest client from 127.0.0.2, connected after (ms from the attack in place)': other === null ? 'failed for 60 s' : ms(other),
        'relay up after the attack': String(up)
      }
    } finally {
      for (const sender of senders) sender.child.kill('SIGKILL')
    }
  },

  async burst (cli, dataDir) {
    const relay = await startRelayAt(cli, dataDir)
    const writer = stockClient(relay.url, 'bench/burst')
    const reader = stockClient(relay.url, 'bench/burst')
    await Promise.all([writer.synced(), reader.synced()])
    const closes: number[] = []
    let measuring = true
    writer.provider.on('connection-close', event => { if (measuring) closes.push(event?.code ?? 0) })
    const arrivals: number[] = []
    reader.doc.on('update', () => { arrivals.push(performance.now()) })
    // The writer's 5,000 transactions take this process a few hundred ms before anything is sent.
    const started = performance.now()
    for (let i = 0; i < 5000; i++) writer.text.insert(writer.text.length, String(i % 10))
    const written = performance.now()
    const whole = await reader.textIs(writer.text.toString(), 60_000).then(() => true, () => false)
    const done = performance.now()
    measuring = false
    const gaps = arrivals.slice(1).map((at, i) => at - arrivals[i]!)
    writer.destroy()
    reader.destroy()
    await relay.stop()
    return {
      'writer closed (codes)': closes.length === 0 ? 'no' : closes.join(', '),
      'updates the reader saw': arrivals.length,
      'writing the 5,000 transactions took this process (ms)': ms(written - started),
      'reader\'s first update after the writing (ms)': ms((arrivals[0] ?? NaN) - written),
      'longest gap between two of the reader\'s updates (ms)': ms(Math.max(...gaps)),
      'reader had everything, from the first transaction (ms)': whole ? ms(done - started) : 'not within 60 s'
    }
  },

  async 'large-document' (cli, dataDir) {
    const help = spawnSync(process.execPath, [cli, 'relay', '--help'], { encoding: 'utf8' }).stdout
    const defaultBytes = Number(/--max-document-bytes N .*\(default (\d+)\)/.exec(help)?.[1])
    const limit = 21 * MiB
    const relay = await startRelayAt(cli, dataDir, ['--max-document-bytes', String(limit)])
    const doc = new Y.Doc()
    const updates = Array.from({ length: 5 }, () => append(doc, 4 * MiB))
    const stored = updates.reduce((total, update) => total + update.length, 0)
    const loaded = await send(relay.url, 'bench/full', updates)
    // A client that accepts frames just above the document's size asks for all of it.
    const maxPayload = stored + 64 * 1024
    const copy = new Y.Doc()
    let largest = 0
    const started = performance.now()
    const ws = new WebSocket(`${relay.url}/bench/full`, { maxPayload })
    ws.on('error', () => {})
    const outcome = await within(new Promise<string>(resolve => {
      ws.once('open', () => ws.send(new Uint8Array([0, 0, 1, 0])))
      ws.on('message', (data: Buffer) => {
        largest = Math.max(largest, data.length)
        const message = decodeYMessage(new Uint8Array(data))
        if (message.type === 'sync-step2' || message.type === 'sync-update') Y.applyUpdate(copy, message.update)
        if (copy.getText('t').length === 20 * MiB) resolve('synced')
      })
      ws.once('close', code => resolve(`closed ${code}`))
    }), 60_000, 'not synced within 60 s')
    const elapsed = performance.now() - started
    ws.terminate()
    await relay.stop()
    return {
      'default maxDocumentBytes, MiB (a Node ws client accepts frames up to 100)': defaultBytes / MiB,
      'measured document: stored bytes (MiB), limit set to': `${(stored / MiB).toFixed(2)}, ${limit / MiB} MiB`,
      'document loaded': loaded,
      'client maxPayload (MiB)': (maxPayload / MiB).toFixed(2),
      'client': outcome === 'synced' ? `synced in ${ms(elapsed)} ms` : outcome,
      'largest frame the relay sent (MiB)': (largest / MiB).toFixed(2)
    }
  },

  async 'disk-full' (cli, dataDir): Promise<Figures> {
    if (process.getuid?.() !== 0) return { 'not measured': 'needs root to mount a tmpfs' }
    const mount = join(dataDir, 'tmpfs')
    mkdirSync(mount)
    if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=20m', 'tmpfs', mount]).status !== 0) return { 'not measured': 'mount -t tmpfs failed' }
    const data = join(mount, 'relay')
    const filler = join(mount, 'filler')
    const docId = 'bench/disk'
    try {
      let relay = await startRelayAt(cli, data)
      const writer = stockClient(relay.url, docId)
      await writer.synced()
      writer.text.insert(0, 'stored ')
      await until(() => relay.committed() >= 1, 10_000)
      const native = await nativeReplica(cli, relay.url)
      const nativeDoc = await native.open(docId)
      await until(() => nativeDoc.getText('t').toString() === 'stored ', 10_000)

      fill(filler)
      writer.text.insert(7, 'lost?')
      nativeDoc.getText('t').insert(0, '> ')
      const failed = await relay.logged(/failed to store an update/, 10_000)
      const acknowledged = await until(() => native.doc(docId).pending === 0, 1000)
      const during = await freshView(relay.url, docId)

      rmSync(filler)
      const committedAtRecovery = relay.committed()
      const afterSpace = stockClient(relay.url, docId)
      const resent = await within(afterSpace.textIs('> stored lost?', 20_000).then(() => true, () => false), 21_000, false)
      writer.text.insert(writer.text.length, ' again')
      const again = await within(afterSpace.textIs('> stored lost? again', 10_000).then(() => true, () => false), 11_000, false)
      const durable = await within(native.doc(docId).durable().then(() => true, () => false), 10_000, false)
      const storedAgain = await until(() => relay.committed() > committedAtRecovery, 5000)
      const liveWriter = writer.text.toString()
      afterSpace.destroy()
      writer.destroy()
      await native.close()
      await relay.stop()
      relay = await startRelayAt(cli, data)
      const restarted = await freshView(relay.url, docId)
      await relay.stop()
      return {
        'relay logged a failed store': String(failed),
        'native edit acknowledged while the disk was full': String(acknowledged),
        'fresh client during the fault sees (stored: "stored ")': during,
        'after space returns, the relay commits writes again': String(storedAgain),
        'after space returns, a client gets the edits made during the fault': String(resent),
        'after space returns, a new edit reaches a client': String(again),
        'native edit acknowledged after space returns': String(durable),
        'writer\'s own view': quote(liveWriter),
        'fresh client after a restart sees': restarted
      }
    } finally {
      spawnSync('umount', ['-l', mount])
    }
  }
}

// ---------------------------------------------------------------------------------------
// Runs: each case, each build, N times; one markdown table per case.

const builds = [
  ...(process.env.PETALDB_BASELINE === undefined ? [] : [{ name: 'before', cli: join(process.env.PETALDB_BASELINE, 'dist/server/cli.js') }]),
  { name: 'after', cli: CLI_PATH }
]
const args = process.argv.slice(2)
const runsAt = args.indexOf('--runs')
const runs = runsAt === -1 ? 1 : Number(args.splice(runsAt, 2)[1])
const unknown = args.filter(name => !(name in cases))
if (unknown.length > 0 || !(runs >= 1)) {
  console.error(`usage: attack-figures.ts [--runs N] [${Object.keys(cases).join(' | ')} ...]`)
  process.exit(2)
}
for (const name of args.length > 0 ? args : Object.keys(cases)) {
  const results = new Map<string, Figures[]>(builds.map(build => [build.name, []]))
  for (let run = 0; run < runs; run++) {
    for (const build of builds) {
      const dataDir = mkdtempSync(join(tmpdir(), 'petaldb-attack-'))
      let figures: Figures
      try {
        figures = await within(cases[name]!(build.cli, dataDir), 180_000, { error: 'did not finish within 180 s' })
      } catch (error) {
        figures = { error: (error as Error).message }
      } finally {
        for (const relay of [...running]) await relay.stop()
        rmSync(dataDir, { recursive: true, force: true })
      }
      results.get(build.name)!.push(figures)
      process.stderr.write(`${name} ${build.name} run ${run + 1}: ${JSON.stringify(figures)}\n`)
    }
  }
  const figures = [...new Set([...results.values()].flat().flatMap(figure => Object.keys(figure)))]
  const cell = (build: string, figure: string): string => results.get(build)!.map(result => String(result[figure] ?? '')).join(' · ')
  console.log([
    `\n### ${name}${runs > 1 ? ` (${runs} runs)` : ''}\n`,
    `| figure | ${builds.map(build => build.name).join(' | ')} |`,
    `|---|${builds.map(() => '---').join('|')}|`,
    ...figures.map(figure => `| ${figure} | ${builds.map(build => cell(build.name, figure)).join(' | ')} |`)
  ].join('\n'))
}
process.exit(0)
