/**
 * Figures for attacks on replicas and their peer links (signaling through a relay, peers of a
 * replica that listens for peers, WebRTC data channels), before and after their fixes, side
 * by side: each case runs against the build of this tree and, when PETALDB_BASELINE names
 * the directory of another build (a checkout of an earlier commit, built with
 * `npm run build`), against that one in the same run. Every module a case uses from PetalDB
 * is loaded from the build under test (its dist/ directory): replicas, stores, listeners,
 * relays and the native protocol's codec, whose version differs between builds (a raw
 * connection here always speaks the version of the build it attacks). A replica whose crash
 * or memory is measured runs in a child process of its own. Each case ends by itself within
 * about 30 s per build. Not part of `npm test` or `npm run bench`; run it on a quiet machine.
 *
 *   npm run build && PETALDB_BASELINE=<dir> npx tsx bench/peer-attack-figures.ts [case...]
 *
 * It prints one markdown table per case (figure, before, after) on stdout, and each build's
 * figures as JSON on stderr as they come.
 *
 * Cases:
 * - impersonation: a read-only client connects to an auth relay under the peer ids of a
 *   writer and a victim already connected there, and listens while they negotiate a WebRTC
 *   link;
 * - offer-crash: a real SDP offer, without a hi first, to a Node replica with WebRTC;
 * - durable-lie: a listener that says it is a durable relay and acknowledges every update;
 * - poisoned-listener: a peer of a listening replica sends an item whose origin and right
 *   origin are in different lists, which the replica's relay refuses;
 * - many-documents: a peer opens 1,200 documents on a listening replica (over two
 *   connections, each under the listener's limit of documents per connection), which then
 *   writes its own document;
 * - reassembly: 256 MiB of data-channel pieces with no last one;
 * - amplification: a read-only client broadcasts 16 KiB hi signals to 30 readers that do not read;
 * - presence-forgery: a peer of a listening replica overwrites, then removes, the presence
 *   of a client of its relay;
 * - refusals: a replica with an invalid token, and one writing with a read-only token.
 */
import { spawn, spawnSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { RTCPeerConnection } from 'node-datachannel/polyfill'
import WebSocket, { WebSocketServer } from 'ws'
import { WebsocketProvider } from 'y-websocket'
import type { Awareness } from 'y-protocols/awareness'
import * as Y from 'yjs'
import type { NativeMessage } from '../shared/wire/native-messages.js'
import { captureLog, type CapturedLog } from '../test/helpers/log-capture.js'
import { craftUpdate } from '../test/helpers/crafted-updates.js'
import { tcpProxy, type TcpProxy } from '../test/helpers/tcp-proxy.js'
import { signToken } from '../test/helpers/tokens.js'
import { sleep, until, within } from './waiting.js'
import { encodeAwarenessEntries } from '../shared/wire/awareness.js'

type Figures = Record<string, string | number>
const MiB = 1024 * 1024
/** This tree's root: child processes run here, so that they resolve the same node_modules. */
const HERE = fileURLToPath(new URL('..', import.meta.url))

// ---------------------------------------------------------------------------------------
// A build's modules, as far as the cases use them (the same in every build measured, or
// written so that both builds take them: options one build does not know are ignored).

interface Handle {
  readonly ydoc: Y.Doc
  readonly status: string
  readonly pending: number
  readonly peers: Array<{ peerId: string, isRelay: boolean, state: string }>
  readonly awareness: Awareness
  whenLoaded(): Promise<void>
  synced(): Promise<void>
  durable(): Promise<void>
}
interface Replica {
  readonly self: { peerId: string }
  doc(docId: string): Handle
  open(docId: string): Promise<Y.Doc>
  on(event: string, listener: (event: { status?: string, isRelay?: boolean, durable?: boolean, code?: number, docId?: string }) => void): void
  close(): Promise<void>
}
interface Relay {
  readonly url: string
  readonly port: number
  health(): { clients: number }
  close(): Promise<void>
}
interface Build {
  name: string
  root: string
  client: { Replica: new (options: Record<string, unknown>) => Replica }
  node: {
    SqliteStore: new (path: string) => unknown
    listenForPeers(replica: Replica, options: Record<string, unknown>): Promise<{ url: string, close(): Promise<void> }>
  }
  server: { startRelay(options: Record<string, unknown>): Promise<Relay> }
  wire: {
    NATIVE_PROTOCOL_VERSION: number
    NATIVE_SUBPROTOCOL: string
    encodeNativeMessage(message: NativeMessage): Uint8Array
    decodeNativeMessage(bytes: Uint8Array): NativeMessage
  }
}

const fileUrl = (root: string, path: string): string => pathToFileURL(join(root, path)).href

async function loadBuild (name: string, root: string): Promise<Build> {
  return {
    name,
    root,
    client: await import(fileUrl(root, 'dist/client/index.js')),
    node: await import(fileUrl(root, 'dist/client/node.js')),
    server: await import(fileUrl(root, 'dist/server/index.js')),
    wire: await import(fileUrl(root, 'dist/shared/wire/native-messages.js'))
  }
}

// ---------------------------------------------------------------------------------------
// Small tools

const ms = (value: number): string => Number.isFinite(value) ? value.toFixed(0) : 'n/a'
const mb = (bytes: number): string => (bytes / MiB).toFixed(1)
const yesNo = (value: boolean): string => value ? 'yes' : 'no'

/** Milliseconds until `promise` settles: `resolved <ms>`, `rejected <ms> (<why>)`, or null after `timeoutMs`. */
async function settleTime (promise: Promise<unknown>, timeoutMs: number): Promise<string | null> {
  const started = performance.now()
  const took = (): string => ms(performance.now() - started)
  return await within(promise.then(() => `resolved after ${took()} ms`, (error: { code?: number, message?: string }) =>
    `rejected after ${took()} ms (${error?.code ?? error?.message?.slice(0, 40) ?? 'error'})`), timeoutMs, null)
}

/** What the case running now leaves behind (relays, replicas, sockets, children), undone when it ends, however it ends. */
let cleanups: Array<() => unknown> = []
const defer = (cleanup: () => unknown): void => { cleanups.push(cleanup) }
async function cleanUp (): Promise<void> {
  for (const cleanup of cleanups.splice(0).reverse()) {
    try {
      await within(Promise.resolve(cleanup()), 5000, undefined)
    } catch {}
  }
}

let files = 0
/** A fresh file or directory name in `dir`. */
const fresh = (dir: string, name: string): string => join(dir, `${name}-${files++}`)

/** A relay of `build` in this process, logging to memory (read: `log.entries`). */
async function relayOf (build: Build, dir: string, options: Record<string, unknown> = {}): Promise<{ relay: Relay, log: CapturedLog }> {
  const log = captureLog('info')
  const relay = await build.server.startRelay({ port: 0, dataDir: fresh(dir, 'relay'), logger: log.logger, ...options })
  defer(() => relay.close())
  return { relay, log }
}

/** A TCP proxy in front of `relay` that counts the connections through it. */
async function proxyTo (relay: Relay): Promise<TcpProxy> {
  const proxy = await tcpProxy(() => relay.port)
  defer(() => proxy.close())
  return proxy
}

/** A replica of `build` on a SQLite file (`path`, or a fresh one), closed when the case ends. */
function replicaOf (build: Build, dir: string, options: Record<string, unknown>, path = fresh(dir, 'replica.db')): Replica {
  const replica = new build.client.Replica({ store: new build.node.SqliteStore(path), ...options })
  defer(() => replica.close())
  return replica
}

/** Resolves once `replica`'s relay link is online (false after `timeoutMs`). */
function online (replica: Replica, timeoutMs: number): Promise<boolean> {
  // `durable` in builds before `isRelay`.
  return within(new Promise<boolean>(resolve => replica.on('status', event => { if (event.status === 'online' && (event.isRelay ?? event.durable) === true) resolve(true) })), timeoutMs, false)
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()
type Signal = Extract<NativeMessage, { type: 'signal' }>

/** A signal to `to` ('' for every client of the document), as a client sends it (the relay stamps who sent it). */
const signal = (docId: string, to: string, payload: unknown): NativeMessage =>
  ({ type: 'signal', docId: docId as Signal['docId'], peerId: to, writable: false, user: '', payload: encoder.encode(JSON.stringify(payload)) })

/** A signal's payload, parsed. */
const payloadOf = (message: Signal): { t?: string, reply?: boolean } => JSON.parse(decoder.decode(message.payload)) as { t?: string, reply?: boolean }


/** A raw native-protocol connection speaking `build`'s protocol version, as a peer would, honest or not. */
interface RawPeer {
  peerId: string
  ws: WebSocket
  /** Every message received, decoded. */
  received: NativeMessage[]
  /** How the connection closed, and when (performance.now()); null while it is open. */
  closed: { code: number, reason: string, at: number } | null
  /** Resolves true once the other end said WELCOME, false if it closed the connection first. */
  welcomed: Promise<boolean>
  send(message: NativeMessage): void
  /** Opens `docId`: resolves with 'sync', 'docError <code>', 'closed <code>' or 'no answer'. */
  open(docId: string, timeoutMs?: number): Promise<string>
  /** Signals received, decoded. */
  signals(): Signal[]
}

function rawPeer (build: Build, url: string, { peerId = randomUUID(), token = '' }: { peerId?: string, token?: string } = {}): RawPeer {
  const { wire } = build
  const ws = new WebSocket(url, wire.NATIVE_SUBPROTOCOL, { maxPayload: 256 * MiB })
  ws.on('error', () => {})
  defer(() => ws.terminate())
  const peer: RawPeer = {
    peerId,
    ws,
    received: [],
    closed: null,
    welcomed: new Promise(resolve => {
      ws.on('message', (data: Buffer) => {
        const message = wire.decodeNativeMessage(new Uint8Array(data))
        peer.received.push(message)
        if (message.type === 'welcome') resolve(true)
      })
      ws.once('close', (code, reason) => {
        peer.closed = { code, reason: reason.toString(), at: performance.now() }
        resolve(false)
      })
    }),
    send (message) {
      const frame = wire.encodeNativeMessage(message)
      if (ws.readyState === WebSocket.OPEN) ws.send(frame)
      else if (ws.readyState === WebSocket.CONNECTING) ws.once('open', () => ws.send(frame))
    },
    async open (docId, timeoutMs = 5000) {
      peer.send({ type: 'open', docId: docId as Signal['docId'], stateVector: new Uint8Array([0]) })
      let answer: string | null = null
      await until(() => {
        const message = peer.received.find(m => (m.type === 'sync' || m.type === 'doc-error') && m.docId === docId)
        if (message !== undefined) answer = message.type === 'sync' ? 'sync' : `docError ${(message as { code: number }).code}`
        else if (peer.closed !== null) answer = `closed ${peer.closed.code}`
        return answer !== null
      }, timeoutMs)
      return answer ?? 'no answer'
    },
    signals: () => peer.received.filter((m): m is Signal => m.type === 'signal')
  }
  peer.send({ type: 'hello', version: wire.NATIVE_PROTOCOL_VERSION, peer: { peerId, isRelay: false }, token })
  return peer
}

/** A stock y-websocket client of `url`'s `docId`. */
function stockClient (url: string, docId: string): { doc: Y.Doc, provider: WebsocketProvider } {
  const doc = new Y.Doc()
  const provider = new WebsocketProvider(url, docId, doc, { WebSocketPolyfill: WebSocket as never, disableBc: true })
  defer(() => { provider.destroy(); doc.destroy() })
  return { doc, provider }
}

/** A real SDP offer from a node-datachannel connection with a data channel, which will never answer. */
async function realOffer (): Promise<string> {
  const rtc = new RTCPeerConnection({ iceServers: [] })
  defer(() => rtc.close())
  rtc.createDataChannel('x')
  const offer = await rtc.createOffer()
  await rtc.setLocalDescription(offer)
  return offer.sdp ?? ''
}

/** Resident memory of process `pid` now (VmRSS) or at its peak (VmHWM), in bytes; NaN once it is gone. */
function procMemory (pid: number, field: 'VmRSS' | 'VmHWM'): number {
  try {
    return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024
  } catch {
    return NaN
  }
}

// ---------------------------------------------------------------------------------------
// Child processes: a replica (or a pair of data channels) whose crash or memory is measured,
// in a Node process of its own that loads the build under test from the root it is given.
// It talks over IPC: one message per event, each an object with one key naming it.

interface Child {
  pid: number
  /** The next message with `key` (they queue up), or null after `timeoutMs`. */
  next<T>(key: string, timeoutMs: number): Promise<T | null>
  send(message: object): void
  /** How the process ended, and when (performance.now()). */
  exited: Promise<{ code: number | null, signal: string | null, at: number }>
  alive(): boolean
  /** The last lines it wrote to stderr. */
  stderr(): string
  /** The last error it wrote to stderr ('' for none). */
  lastError(): string
}

/** The preamble of every child: its arguments (one JSON value) and `load(path)` of a module of the build under test. */
const CHILD_PREAMBLE = `
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
const args = JSON.parse(process.argv.at(-1))
const load = path => import(pathToFileURL(join(args.root, path)).href)
const memory = () => { globalThis.gc?.(); globalThis.gc?.(); const { rss, heapUsed } = process.memoryUsage(); return { rss, heapUsed } }
process.on('disconnect', () => process.exit(0))
`

function child (source: string, args: Record<string, unknown>, { exposeGc = false } = {}): Child {
  const flags = ['--input-type=module', ...(exposeGc ? ['--expose-gc'] : [])]
  const proc = spawn(process.execPath, [...flags, '-e', CHILD_PREAMBLE + source, JSON.stringify(args)], { cwd: HERE, stdio: ['ignore', 'ignore', 'pipe', 'ipc'] })
  let gone = false
  let stderr = ''
  proc.stderr!.on('data', (data: Buffer) => { stderr = (stderr + data.toString()).slice(-4000) })
  const messages: Array<Record<string, unknown>> = []
  proc.on('message', message => messages.push(message as Record<string, unknown>))
  const exited = new Promise<{ code: number | null, signal: string | null, at: number }>(resolve => proc.once('exit', (code, signal) => {
    gone = true
    resolve({ code, signal, at: performance.now() })
  }))
  defer(async () => {
    if (gone) return
    proc.kill('SIGKILL')
    await exited
  })
  return {
    pid: proc.pid!,
    async next<T>(key: string, timeoutMs: number) {
      let found: T | null = null
      await until(() => {
        const at = messages.findIndex(message => key in message)
        if (at !== -1) found = messages.splice(at, 1)[0]![key] as T
        return found !== null || gone
      }, timeoutMs)
      return found
    },
    send: message => { if (!gone && proc.connected) proc.send(message) },
    exited,
    alive: () => !gone,
    stderr: () => stderr.trim().split('\n').filter(line => !/^\s+at |^Node\.js v|^\s*$/.test(line)).slice(-3).join(' / '),
    lastError: () => stderr.split('\n').filter(line => /^[A-Za-z]*Error\b/.test(line)).at(-1) ?? ''
  }
}

/** A Node replica with WebRTC on `args.relay`, with `args.docId` open and synced; says `{ ready: peerId }`. */
const WEBRTC_REPLICA = `
const client = await load('dist/client/index.js')
const node = await load('dist/client/node.js')
const { RTCPeerConnection } = await import('node-datachannel/polyfill')
const replica = new client.Replica({ store: new node.SqliteStore(args.db), relays: [args.relay], webrtc: { RTCPeerConnection } })
await replica.doc(args.docId).synced()
process.send({ ready: replica.self.peerId })
`

/**
 * A replica listening for peers (open: no token keys), its relay at `args.relay`, with its own
 * document 'own/notes' synced; says `{ ready: { url, memory } }`. `{ do: 'write' }` makes a
 * change there and says `{ durable: ms | null }` (null: not within `timeoutMs`); `{ do: 'memory' }`
 * says `{ memory }` after a GC.
 */
const LISTENING_REPLICA = `
const client = await load('dist/client/index.js')
const node = await load('dist/client/node.js')
const replica = new client.Replica({ store: new node.SqliteStore(args.db), relays: [args.relay] })
const server = await node.listenForPeers(replica, { open: true })
const own = replica.doc('own/notes')
await own.synced()
process.on('message', async message => {
  if (message.do === 'memory') process.send({ memory: memory() })
  if (message.do === 'write') {
    const started = performance.now()
    own.ydoc.getText('t').insert(0, 'mine')
    const durable = await Promise.race([own.durable().then(() => true, () => false), new Promise(resolve => setTimeout(() => resolve(false), message.timeoutMs))])
    process.send({ durable: durable ? performance.now() - started : null })
  }
})
process.send({ ready: { url: server.url, memory: memory() } })
`

/**
 * Two node-datachannel connections linked in this process: the victim's end is the build's
 * rtcLink (taking messages of up to args.maxMessageBytes, an argument older builds ignore),
 * the attacker's a bare data channel that sends args.totalBytes as MORE pieces of 16 KiB and
 * never a LAST. Says `{ result: ... }` once all of it arrived, the link closed, or
 * args.timeoutMs passed.
 */
const REASSEMBLY = `
const { rtcLink } = await load('dist/shared/transport/rtc.js')
const { RTCPeerConnection } = await import('node-datachannel/polyfill')
const [attacker, victim] = [new RTCPeerConnection(), new RTCPeerConnection()]
const described = new Map([[attacker, false], [victim, false]])
const held = new Map([[attacker, []], [victim, []]])
const pass = to => event => {
  if (event.candidate === null) return
  if (described.get(to)) void to.addIceCandidate(event.candidate)
  else held.get(to).push(event.candidate)
}
const setRemote = async (to, description) => {
  await to.setRemoteDescription(description)
  described.set(to, true)
  for (const candidate of held.get(to).splice(0)) void to.addIceCandidate(candidate)
}
attacker.onicecandidate = pass(victim)
victim.onicecandidate = pass(attacker)
const opened = channel => new Promise(resolve => {
  if (channel.readyState === 'open') resolve(channel)
  else channel.onopen = () => resolve(channel)
})
const attackerChannel = opened(attacker.createDataChannel('petaldb'))
const victimChannel = new Promise(resolve => { victim.ondatachannel = event => resolve(opened(event.channel)) })
const offer = await attacker.createOffer()
await attacker.setLocalDescription(offer)
await setRemote(victim, offer)
const answer = await victim.createAnswer()
await victim.setLocalDescription(answer)
await setRemote(attacker, answer)
const [out, into] = await Promise.all([attackerChannel, victimChannel])
const link = rtcLink(into, args.maxMessageBytes)
let received = 0
let closed = null
const started = performance.now()
link.onMessage = () => {}
link.onClose = (code, reason) => { closed ??= { code, reason, ms: performance.now() - started, receivedMiB: received / 1048576 } }
const taking = into.onmessage
into.onmessage = event => { received += event.data.byteLength - 1; taking(event) }
const before = memory()
let peak = before.rss
const sampler = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss) }, 50)
const piece = new Uint8Array(16 * 1024 + 1)
piece[0] = 1 // MORE
let sent = 0
const deadline = started + args.timeoutMs
while (sent < args.totalBytes && closed === null && out.readyState === 'open' && performance.now() < deadline) {
  if (out.bufferedAmount > 4 * 1048576) { await new Promise(resolve => setTimeout(resolve, 1)); continue }
  try { out.send(piece) } catch { break }
  sent += 16 * 1024
  if (sent % (1048576) === 0) await new Promise(resolve => setImmediate(resolve))
}
while (received < sent && closed === null && performance.now() < deadline) await new Promise(resolve => setTimeout(resolve, 20))
clearInterval(sampler)
peak = Math.max(peak, process.memoryUsage().rss)
const end = memory()
process.send({ result: { before, peak, end, sentMiB: sent / 1048576, receivedMiB: received / 1048576, seconds: (performance.now() - started) / 1000, closed } })
`

// ---------------------------------------------------------------------------------------
// Cases

const SECRET = 'peer-attack-figures-secret-0123456789'

const cases: Record<string, (build: Build, dir: string) => Promise<Figures>> = {
  async impersonation (build, dir) {
    const { relay } = await relayOf(build, dir, { authKeys: new Map([['', SECRET]]) })
    const docId = 'team/x'
    const webrtc = { RTCPeerConnection }
    const [writerToken, victimToken, token] = await Promise.all([
      signToken(SECRET, { sub: 'w', write: ['team/*'] }),
      signToken(SECRET, { sub: 'v', write: ['team/*'] }),
      signToken(SECRET, { sub: 'mallory', read: ['team/*'] })
    ])
    const writer = replicaOf(build, dir, { relays: [relay.url], webrtc, token: writerToken })
    const victim = replicaOf(build, dir, { relays: [relay.url], webrtc, token: victimToken })
    // Both connected (their ids bound there, after the fix), with no document open yet.
    await Promise.all([online(writer, 10_000), online(victim, 10_000)])
    const asWriter = rawPeer(build, relay.url, { peerId: writer.self.peerId, token })
    const asVictim = rawPeer(build, relay.url, { peerId: victim.self.peerId, token })
    const observer = rawPeer(build, relay.url, { token })
    const accepted = await Promise.all([asWriter.welcomed, asVictim.welcomed, observer.welcomed])
    const impostors = [asWriter, asVictim].filter(peer => peer.closed === null)
    await Promise.all([...impostors, observer].map(peer => peer.open(docId)))
    // Now the writer and the victim open the document: they greet each other and negotiate a
    // direct link through the relay, with signals addressed to each other's ids.
    await Promise.all([writer.open(docId), victim.open(docId)])
    const linkedTo = (r: Replica, other: Replica): boolean => r.doc(docId).peers.some(peer => peer.peerId === other.self.peerId && !peer.isRelay)
    const linked = await until(() => linkedTo(writer, victim) && linkedTo(victim, writer), 15_000)
    await sleep(1000) // late ICE candidates
    // The attacker signals someone else as the writer: what the relay stamps on it.
    const marked = (s: Signal): boolean => (payloadOf(s) as { by?: string }).by === 'mallory'
    for (const peer of impostors) peer.send(signal(docId, observer.peerId, { t: 'hi', reply: true, by: 'mallory' }))
    await until(() => observer.signals().filter(marked).length >= impostors.length, 2000)
    // Broadcast hi's reach every reader of the document; anything else was addressed to the id.
    const addressed = (peer: RawPeer): string => {
      const kinds = peer.signals().map(payloadOf).filter(p => p.t !== 'hi' || p.reply === true).map(p => p.t === 'hi' ? 'hi reply' : p.t!)
      if (kinds.length === 0) return '0'
      const counts = new Map<string, number>()
      for (const kind of kinds) counts.set(kind, (counts.get(kind) ?? 0) + 1)
      return `${kinds.length} (${[...counts].map(([kind, count]) => `${count} ${kind}`).join(', ')})`
    }
    const stampedAsWriter = observer.signals().filter(s => marked(s) && s.peerId === writer.self.peerId).length
    const fate = (peer: RawPeer, welcomed: boolean): string => welcomed ? 'accepted (WELCOME)' : `closed ${peer.closed?.code} ${JSON.stringify(peer.closed?.reason.split(':')[0])}`
    return {
      'connection under the writer\'s id': fate(asWriter, accepted[0]),
      'connection under the victim\'s id': fate(asVictim, accepted[1]),
      'signals addressed to the victim delivered to the attacker': addressed(asVictim),
      'signals addressed to the writer delivered to the attacker': addressed(asWriter),
      'attacker\'s signals delivered to a third client stamped with the writer\'s id': stampedAsWriter,
      'writer and victim linked directly (within 15 s)': yesNo(linked)
    }
  },

  async 'offer-crash' (build, dir) {
    const { relay } = await relayOf(build, dir)
    const docId = 'rtc/victim'
    const victim = child(WEBRTC_REPLICA, { root: build.root, relay: relay.url, docId, db: fresh(dir, 'victim.db') })
    const peerId = await victim.next<string>('ready', 15_000)
    if (peerId === null) throw new Error(`the victim did not start: ${victim.stderr()}`)
    // An id that sorts before any replica's: a peer that may offer.
    const attacker = rawPeer(build, relay.url, { peerId: '0-attacker' })
    const opened = await attacker.open(docId)
    const offer = await realOffer()
    const sentAt = performance.now()
    attacker.send(signal(docId, peerId, { t: 'offer', sdp: offer }))
    const exit = await within(victim.exited, 2000, null)
    return {
      'attacker opened the document': opened,
      'replica process after an offer without a hi': exit === null
        ? 'alive 2 s later'
        : `died ${ms(exit.at - sentAt)} ms after the offer (exit ${exit.code ?? exit.signal})`,
      'its last error': exit === null ? '—' : victim.lastError().slice(0, 120) || victim.stderr().slice(0, 120)
    }
  },

  async 'durable-lie' (build, dir) {
    const { wire } = build
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: () => wire.NATIVE_SUBPROTOCOL })
    await new Promise(resolve => wss.once('listening', resolve))
    defer(() => new Promise<void>(resolve => { for (const ws of wss.clients) ws.terminate(); wss.close(() => resolve()) }))
    let acks = 0
    wss.on('connection', ws => {
      const send = (message: NativeMessage): void => ws.send(wire.encodeNativeMessage(message))
      ws.on('message', (data: Buffer) => {
        const message = wire.decodeNativeMessage(new Uint8Array(data))
        if (message.type === 'hello') send({ type: 'welcome', version: wire.NATIVE_PROTOCOL_VERSION, peer: { peerId: 'i-am-a-relay', isRelay: true } })
        if (message.type === 'open') send({ type: 'sync', docId: message.docId, stateVector: new Uint8Array([0]), update: new Uint8Array([0, 0]) })
        if (message.type === 'update' && message.seq > 0) {
          send({ type: 'ack', docId: message.docId, seq: message.seq })
          acks++
        }
      })
    })
    const liar = `ws://127.0.0.1:${(wss.address() as { port: number }).port}`
    const path = fresh(dir, 'lied-to.db')
    // Its relay is unreachable: only the liar answers.
    const replica = replicaOf(build, dir, { relays: ['ws://127.0.0.1:9'], peers: [liar] }, path)
    const handle = replica.doc('trust/doc')
    await handle.whenLoaded()
    handle.ydoc.getText('t').insert(0, 'only saved here')
    const durable = await settleTime(handle.durable(), 5000)
    const acknowledged = await until(() => acks > 0, 1000)
    const [pending, status] = [handle.pending, handle.status]
    await replica.close()
    const again = replicaOf(build, dir, { relays: ['ws://127.0.0.1:9'] }, path)
    const reopened = again.doc('trust/doc')
    await reopened.whenLoaded()
    await sleep(100)
    return {
      'liar acknowledged the change': yesNo(acknowledged),
      'durable()': durable ?? 'not settled within 5 s',
      'pending / status then': `${pending} / ${status}`,
      'pending / status after reopening the store': `${reopened.pending} / ${reopened.status}`
    }
  },

  async 'poisoned-listener' (build, dir) {
    const { relay } = await relayOf(build, dir)
    const proxy = await proxyTo(relay)
    const path = fresh(dir, 'listener.db')
    const docId = 'items/doc'
    const listener = replicaOf(build, dir, { relays: [proxy.url] }, path)
    const server = await build.node.listenForPeers(listener, { open: true })
    defer(() => server.close())
    const handle = listener.doc(docId)
    await within(handle.synced(), 10_000, undefined)
    // Items in two lists, through the listener, on to the relay.
    const peer = rawPeer(build, server.url)
    await peer.open(docId)
    const base = craftUpdate([{ client: 1, clock: 0, structs: [{ parent: 't', text: 'a' }] }, { client: 2, clock: 0, structs: [{ parent: 'u', text: 'b' }] }])
    peer.send({ type: 'update', docId: docId as Signal['docId'], seq: 1, update: base })
    const acked = (seq: number) => () => peer.received.some(m => m.type === 'ack' && m.seq === seq)
    await until(acked(1), 5000)
    const reader = stockClient(relay.url, docId)
    const onRelay = await until(() => `${reader.doc.getText('t').toString()}|${reader.doc.getText('u').toString()}` === 'a|b', 5000)
    // An item between the two lists: the relay refuses it (4400).
    const connectionsBefore = proxy.accepted
    peer.send({ type: 'update', docId: docId as Signal['docId'], seq: 2, update: craftUpdate([{ client: 3, clock: 0, structs: [{ origin: [1, 0], right: [2, 0], text: 'd' }] }]) })
    await until(() => acked(2)() || peer.closed !== null, 5000)
    const answer = acked(2)() ? 'acknowledged' : peer.closed === null ? 'no answer' : `closed ${peer.closed.code} ${JSON.stringify(peer.closed.reason.slice(0, 80))}`
    const holds = Y.decodeStateVector(Y.encodeStateVector(handle.ydoc)).has(3)
    await sleep(9000)
    const closes = proxy.accepted - connectionsBefore
    await Promise.all([server.close(), listener.close()])
    // Restarted on its store: what it holds is sent to the relay again on every handshake.
    const restartedAt = proxy.accepted
    const restarted = replicaOf(build, dir, { relays: [proxy.url] }, path)
    const again = restarted.doc(docId)
    await again.whenLoaded()
    await sleep(5000)
    return {
      'base items on the relay': yesNo(onRelay),
      'listener answered the crafted update': answer,
      'listener holds the crafted item': yesNo(holds),
      'relay closed the listener\'s link, 9 s (new connections through the proxy)': closes,
      'after a restart on its store: connections in 5 s, document status': `${proxy.accepted - restartedAt}, ${again.status}`
    }
  },

  async 'many-documents' (build, dir) {
    const { relay } = await relayOf(build, dir)
    const proxy = await proxyTo(relay)
    const listener = child(LISTENING_REPLICA, { root: build.root, relay: proxy.url, db: fresh(dir, 'listener.db') }, { exposeGc: true })
    type Memory = { rss: number, heapUsed: number }
    const ready = await listener.next<{ url: string, memory: Memory }>('ready', 20_000)
    if (ready === null) throw new Error(`the listener did not start: ${listener.stderr()}`)
    const connectionsBefore = proxy.accepted
    // 1,200 documents over two connections, each under the listener's limit of 1,000 documents
    // per connection (a connection past it is closed, and its documents with it), with at most
    // 100 opens unanswered on each, as fast as the listener answers.
    const peers = [rawPeer(build, ready.url), rawPeer(build, ready.url)]
    await Promise.all(peers.map(peer => peer.welcomed))
    const answers = (peer: RawPeer): NativeMessage[] => peer.received.filter(m => m.type === 'sync' || m.type === 'doc-error')
    const started = performance.now()
    const elapsed = (): number => performance.now() - started
    await Promise.all(peers.map(async (peer, k) => {
      for (let sent = 0; sent < 600 && peer.closed === null && elapsed() < 15_000;) {
        if (sent - answers(peer).length >= 100) {
          await sleep(2)
          continue
        }
        peer.send({ type: 'open', docId: `peer/doc-${k * 600 + sent}` as Signal['docId'], stateVector: new Uint8Array([0]) })
        sent++
      }
    }))
    const everyAnswer = await until(() => peers.every(peer => answers(peer).length === 600 || peer.closed !== null), Math.max(0, 15_000 - elapsed()))
    const answeredIn = elapsed()
    // Then the listener writes its own document.
    listener.send({ do: 'write', timeoutMs: 15_000 })
    const durable = await listener.next<number | null>('durable', 16_000)
    await sleep(Math.max(0, 15_000 - elapsed()))
    const closes = proxy.accepted - connectionsBefore
    listener.send({ do: 'memory' })
    const after = await listener.next<Memory>('memory', 10_000)
    const peak = procMemory(listener.pid, 'VmHWM')
    const all = peers.flatMap(answers)
    const served = all.filter(m => m.type === 'sync').length
    const refused = all.filter(m => m.type === 'doc-error') as Array<{ code: number }>
    const codes = [...new Set(refused.map(m => m.code))].join(', ')
    const perDocument = (grown: number): string => served === 0 ? 'n/a' : `${(grown / served / 1024).toFixed(1)} KiB`
    const closedPeers = peers.filter(peer => peer.closed !== null).map(peer => `${peer.closed!.code} ${JSON.stringify(peer.closed!.reason.slice(0, 60))}`)
    return {
      'documents served to the peer / refused (codes)': `${served} / ${refused.length}${codes === '' ? '' : ` (${codes})`}`,
      'every open answered': everyAnswer ? `in ${ms(answeredIn)} ms` : 'not within 15 s',
      'peer\'s connections closed by the listener': closedPeers.length === 0 ? 'none' : closedPeers.join('; '),
      'relay closed the listener\'s link (new connections through the proxy, from the first open)': `${closes} in ${(elapsed() / 1000).toFixed(0)} s`,
      'listener\'s own write, made once the opens were answered, durable': durable === null ? 'not within 15 s' : `after ${ms(durable)} ms`,
      'listener RSS after GC: before → after (MB)': after === null ? 'n/a' : `${mb(ready.memory.rss)} → ${mb(after.rss)}`,
      'listener peak RSS (MB)': mb(peak),
      'listener heap after GC: before → after (MB)': after === null ? 'n/a' : `${mb(ready.memory.heapUsed)} → ${mb(after.heapUsed)}`,
      'growth per document served, RSS / heap': after === null ? 'n/a' : `${perDocument(after.rss - ready.memory.rss)} / ${perDocument(after.heapUsed - ready.memory.heapUsed)}`
    }
  },

  async reassembly (build) {
    const pair = child(REASSEMBLY, { root: build.root, maxMessageBytes: 16 * MiB, totalBytes: 256 * MiB, timeoutMs: 30_000 }, { exposeGc: true })
    type Result = { before: { rss: number }, peak: number, end: { rss: number }, sentMiB: number, receivedMiB: number, seconds: number, closed: { code: number, reason: string, ms: number, receivedMiB: number } | null }
    const result = await pair.next<Result>('result', 45_000)
    if (result === null) throw new Error(`no result: ${pair.stderr()}`)
    return {
      'pieces sent / received (MiB)': `${result.sentMiB.toFixed(0)} / ${result.receivedMiB.toFixed(0)} in ${result.seconds.toFixed(1)} s`,
      'victim\'s link closed': result.closed === null ? 'no' : `${result.closed.code} after ${result.closed.receivedMiB.toFixed(1)} MiB (${ms(result.closed.ms)} ms) ${JSON.stringify(result.closed.reason)}`,
      'RSS growth, peak (MB; both ends in one process)': mb(result.peak - result.before.rss),
      'RSS growth at the end, after GC (MB)': mb(result.end.rss - result.before.rss)
    }
  },

  async amplification (build, dir) {
    const { relay, log } = await relayOf(build, dir, { authKeys: new Map([['', SECRET]]) })
    const docId = 'team/flood'
    const readers = await Promise.all(Array.from({ length: 30 }, async (_, i) => {
      const reader = rawPeer(build, relay.url, { token: await signToken(SECRET, { sub: `r${i}`, read: ['team/*'] }) })
      await reader.open(docId)
      return reader
    }))
    // Stop reading: what the relay sends them piles up in its send buffers.
    for (const reader of readers) (reader.ws as unknown as { _socket: { pause(): void } })._socket.pause()
    const attacker = rawPeer(build, relay.url, { token: await signToken(SECRET, { sub: 'mallory', read: ['team/*'] }) })
    const opened = await attacker.open(docId)
    const clientsBefore = relay.health().clients
    const pad = 'x'.repeat(16 * 1024 - '{"t":"hi","pad":""}'.length)
    const hi = build.wire.encodeNativeMessage(signal(docId, '', { t: 'hi', pad }))
    const dropped = (): number => log.entries.filter(entry => entry.msg === 'dropping a slow reader').length
    const started = performance.now()
    const startedAt = Date.now()
    let sent = 0
    while (attacker.closed === null && performance.now() - started < 10_000) {
      if (attacker.ws.bufferedAmount < MiB) {
        attacker.ws.send(hi)
        sent++
      }
      await new Promise(resolve => setImmediate(resolve))
    }
    await sleep(300) // a late drop
    const firstDrop = log.entries.find(entry => entry.msg === 'dropping a slow reader') as { time?: number } | undefined
    return {
      'attacker opened the document': opened,
      '16 KiB hi broadcasts sent': sent,
      'readers dropped as slow readers (of 30)': dropped(),
      'first reader dropped after (s)': firstDrop?.time === undefined ? '—' : ((firstDrop.time - startedAt) / 1000).toFixed(1),
      'relay clients: before → after': `${clientsBefore} → ${relay.health().clients}`,
      'attacker closed': attacker.closed === null ? 'no' : `${attacker.closed.code} after ${((attacker.closed.at - started) / 1000).toFixed(2)} s ${JSON.stringify(attacker.closed.reason.slice(0, 80))}`
    }
  },

  async 'presence-forgery' (build, dir) {
    const { relay } = await relayOf(build, dir)
    const docId = 'presence/doc'
    const listener = replicaOf(build, dir, { relays: [relay.url] })
    const server = await build.node.listenForPeers(listener, { open: true })
    defer(() => server.close())
    await within(listener.doc(docId).synced(), 10_000, undefined)
    const honest = stockClient(relay.url, docId)
    honest.provider.awareness.setLocalState({ name: 'honest' })
    const seen = listener.doc(docId).awareness
    const honestId = honest.doc.clientID
    const stateOf = (): string => {
      const state = seen.getStates().get(honestId) as { name?: string } | undefined
      return state === undefined ? 'removed' : JSON.stringify(state)
    }
    const first = await until(() => stateOf() !== 'removed', 10_000) ? stateOf() : 'did not arrive within 10 s'
    const peer = rawPeer(build, server.url)
    await peer.open(docId)
    const send = (clientId: number, clock: number, state: unknown): void =>
      peer.send({ type: 'awareness', docId: docId as Signal['docId'], update: encodeAwarenessEntries([{ clientId, clock, state }]) })
    // Each forgery, then the peer's own state as a marker that the listener has handled it.
    send(honestId, 1000, { name: 'forged' })
    send(4242, 1, { name: 'peer' })
    const handled = await until(() => seen.getStates().has(4242), 5000)
    const forged = stateOf()
    send(honestId, 1001, null)
    send(4242, 2, { name: 'peer again' })
    await until(() => (seen.getStates().get(4242) as { name?: string } | undefined)?.name === 'peer again', 5000)
    const removed = stateOf()
    return {
      'honest client\'s state on the listener first': first,
      'peer\'s messages handled': yesNo(handled),
      'after the forged overwrite (clock 1000)': forged,
      'after the forged removal (clock 1001)': removed
    }
  },

  async refusals (build, dir) {
    const { relay } = await relayOf(build, dir, { authKeys: new Map([['', SECRET]]) })
    const proxy = await proxyTo(relay)
    // (a) An invalid token, with the default reconnect backoff.
    const refusedReplica = replicaOf(build, dir, { relays: [proxy.url], token: 'not-a-token' })
    const started = performance.now()
    let refusedAt: number | null = null
    let refusals = 0
    refusedReplica.on('refused', () => { refusals++; refusedAt ??= performance.now() - started })
    const handle = refusedReplica.doc('team/notes')
    await handle.whenLoaded()
    handle.ydoc.getText('t').insert(0, 'written while refused')
    await sleep(10_000)
    const invalid = { connections: proxy.accepted, refusals, refusedAt, status: handle.status }
    await refusedReplica.close()
    // (b) A write with a read-only token.
    const atStart = proxy.accepted
    const reader = replicaOf(build, dir, { relays: [proxy.url], token: await signToken(SECRET, { sub: 'r', read: ['team/*'] }) })
    const readOnly = reader.doc('team/read-only')
    await within(readOnly.synced(), 5000, undefined)
    const durable = settleTime(readOnly.durable(), 2000)
    readOnly.ydoc.getText('t').insert(0, 'not mine to write')
    await sleep(2000)
    return {
      '(a) invalid token: connections in 10 s': invalid.connections,
      '(a) refused events (first after)': invalid.refusals === 0 ? '0' : `${invalid.refusals} (${ms(invalid.refusedAt!)} ms)`,
      '(a) handle status': invalid.status,
      '(b) read-only write: status / pending after 2 s': `${readOnly.status} / ${readOnly.pending}`,
      '(b) durable()': (await durable) ?? 'not settled within 2 s',
      '(b) connections in those 2 s': proxy.accepted - atStart
    }
  }
}

// ---------------------------------------------------------------------------------------
// Runs: each case against each build; one markdown table per case.

const builds = [
  ...(process.env.PETALDB_BASELINE === undefined ? [] : [{ name: 'before', root: process.env.PETALDB_BASELINE }]),
  { name: 'after', root: HERE }
]
const wanted = process.argv.slice(2)
const unknown = wanted.filter(name => !(name in cases))
if (unknown.length > 0) {
  console.error(`usage: peer-attack-figures.ts [${Object.keys(cases).join(' | ')} ...]`)
  process.exit(2)
}
const loaded = await Promise.all(builds.map(({ name, root }) => loadBuild(name, root)))
const commit = (root: string): string => {
  const head = spawnSync('git', ['-C', root, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).stdout.trim()
  const dirty = spawnSync('git', ['-C', root, 'status', '--porcelain', '--untracked-files=no', '--', 'client', 'server', 'shared'], { encoding: 'utf8' }).stdout.trim() !== ''
  return `${head || 'unknown'}${dirty ? ' with uncommitted changes' : ''}`
}
console.log(`## Attacks on replicas and peer links\n\n${new Date().toISOString().slice(0, 10)}; ${loaded.map(build => `${build.name}: ${commit(build.root)}`).join('; ')}.`)
// An old build may throw where nothing catches it (that is what some cases measure, in child
// processes): here, it is reported with the case instead of ending the run.
let uncaught: string[] = []
process.on('uncaughtException', error => { uncaught.push(error.message.slice(0, 80)) })
process.on('unhandledRejection', error => { uncaught.push(String((error as Error)?.message ?? error).slice(0, 80)) })
for (const name of wanted.length > 0 ? wanted : Object.keys(cases)) {
  const results = new Map<string, Figures>()
  for (const build of loaded) {
    const dir = mkdtempSync(join(tmpdir(), 'petaldb-peer-attack-'))
    let figures: Figures
    uncaught = []
    try {
      figures = await within(cases[name]!(build, dir), 90_000, { error: 'did not finish within 90 s' })
    } catch (error) {
      figures = { error: (error as Error).message }
    } finally {
      await cleanUp()
      rmSync(dir, { recursive: true, force: true })
    }
    if (uncaught.length > 0) figures['uncaught in this process'] = [...new Set(uncaught)].join('; ')
    results.set(build.name, figures)
    process.stderr.write(`${name} ${build.name}: ${JSON.stringify(figures)}\n`)
  }
  const figures = [...new Set([...results.values()].flatMap(figure => Object.keys(figure)))]
  const cell = (build: string, figure: string): string => String(results.get(build)?.[figure] ?? '').replaceAll('|', '\\|')
  console.log([
    `\n### ${name}\n`,
    `| figure | ${loaded.map(build => build.name).join(' | ')} |`,
    `|---|${loaded.map(() => '---').join('|')}|`,
    ...figures.map(figure => `| ${figure} | ${loaded.map(build => cell(build.name, figure)).join(' | ')} |`)
  ].join('\n'))
}
process.exit(0)
