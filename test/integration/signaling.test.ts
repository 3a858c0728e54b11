/**
 * WebRTC signaling through a relay, attacked over real sockets: peer ids are bound to one
 * connection each (4409 for a second), signals are stamped with what the relay knows of the
 * sender, go only to clients that have the document open here and may read it, are
 * validated (4400), and cost their sender every copy delivered (1008 past its budget), so
 * that no client can make the others slow readers.
 */
import { randomUUID } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { Replica } from '../../client/replica.js'
import { SqliteStore, listenForPeers } from '../../client/node.js'
import { parseDocId, type DocId } from '../../shared/wire/doc-id.js'
import { NATIVE_PROTOCOL_VERSION, NATIVE_SUBPROTOCOL, decodeNativeMessage, encodeNativeMessage, type NativeMessage } from '../../shared/wire/native-messages.js'
import { startRelay, type Relay } from '../../server/relay.js'
import { SIGNAL_BURST_BYTES, SignalBudget } from '../../server/connections/signal-budget.js'
import { until } from '../helpers/events.js'
import { captureLog, type CapturedLog } from '../helpers/log-capture.js'
import { tempDir } from '../helpers/temp.js'
import { signToken } from '../helpers/tokens.js'

const SECRET = 'signaling-secret-0123456789'
const MAX_BUFFERED = 2 * 1024 * 1024
const root = tempDir()
let relay: Relay
let log: CapturedLog

beforeAll(async () => {
  log = captureLog('info')
  relay = await startRelay({ port: 0, store: new SqliteStore(join(root, 'relay.db')), authKeys: new Map([['', SECRET]]), limits: { maxBufferedBytes: MAX_BUFFERED }, logger: log.logger })
})
afterAll(() => relay.close())

const clients: Client[] = []
afterEach(() => { for (const client of clients.splice(0)) client.ws.terminate() })

type Signal = Extract<NativeMessage, { type: 'signal' }>
const encoder = new TextEncoder()

/** A raw native client, speaking the protocol frame by frame as an attacker would. */
interface Client {
  peerId: string
  ws: WebSocket
  received: NativeMessage[]
  closed: Promise<{ code: number, reason: string }>
  isClosed: () => boolean
  welcomed: () => Promise<void>
  /** Opens `docId` and resolves once the relay answered (a sync, or a refusal). */
  open: (docId: string) => Promise<void>
  /** Sends a signal about `docId` to `to` ('' for every client), claiming whatever `claims` says. */
  signal: (docId: string, to: string, payload: unknown, claims?: { writable: boolean, user: string }) => void
  /** Signals received about `docId`. */
  signals: (docId?: string) => Signal[]
  until: (what: string, check: () => boolean) => Promise<void>
}

function connect (token: string, peerId: string = randomUUID()): Client {
  const ws = new WebSocket(relay.url, NATIVE_SUBPROTOCOL)
  ws.on('error', () => {})
  const received: NativeMessage[] = []
  const events = new EventEmitter()
  let isClosed = false
  ws.on('message', (data: Buffer) => {
    received.push(decodeNativeMessage(new Uint8Array(data)))
    events.emit('change')
  })
  const closed = new Promise<{ code: number, reason: string }>(resolve => ws.on('close', (code, reason) => {
    isClosed = true
    events.emit('change')
    resolve({ code, reason: reason.toString() })
  }))
  const send = (message: NativeMessage): void => {
    const frame = encodeNativeMessage(message)
    if (ws.readyState === ws.OPEN) ws.send(frame)
    else ws.once('open', () => ws.send(frame))
  }
  send({ type: 'hello', version: NATIVE_PROTOCOL_VERSION, peer: { peerId, isRelay: false }, token })
  const untilChange = (what: string, check: () => boolean): Promise<void> =>
    until(what, cb => { events.on('change', cb); return () => events.off('change', cb) }, check)
  const client: Client = {
    peerId,
    ws,
    received,
    closed,
    isClosed: () => isClosed,
    welcomed: () => untilChange('welcome', () => received.some(m => m.type === 'welcome')),
    open: async docId => {
      send({ type: 'open', docId: parseDocId(docId), stateVector: new Uint8Array([0]) })
      await untilChange(`${docId} answered`, () => received.some(m => (m.type === 'sync' || m.type === 'doc-error') && m.docId === docId))
    },
    signal: (docId, to, payload, claims = { writable: false, user: '' }) => send({
      type: 'signal',
      docId: parseDocId(docId),
      peerId: to,
      ...claims,
      payload: payload instanceof Uint8Array ? payload : encoder.encode(JSON.stringify(payload))
    }),
    signals: docId => received.filter((m): m is Signal => m.type === 'signal' && (docId === undefined || m.docId === docId)),
    until: untilChange
  }
  clients.push(client)
  return client
}

let n = 0
/** A fresh document id under `prefix`. */
const fresh = (prefix: string): DocId => parseDocId(`${prefix}/${n++}`)
const reader = (sub: string, read = ['sig/*']): Promise<string> => signToken(SECRET, { sub, read })
const writer = (sub: string, write = ['sig/*']): Promise<string> => signToken(SECRET, { sub, write })

/** Connects with `token` and opens `docIds`. */
async function joined (token: string, ...docIds: string[]): Promise<Client> {
  const client = connect(token)
  await client.welcomed()
  for (const docId of docIds) await client.open(docId)
  return client
}

/** The payloads of the signals `client` received, parsed. */
const payloads = (client: Client): unknown[] => client.signals().map(s => JSON.parse(new TextDecoder().decode(s.payload)))

/** Resolves once `client` got a signal about `docId` from `from`: a marker that what `from` sent it before has arrived too. */
const gotFrom = (client: Client, from: Client, docId: string): Promise<void> =>
  client.until(`a signal from ${from.peerId}`, () => client.signals(docId).some(s => s.peerId === from.peerId))

describe('peer ids bound to connections', () => {
  it('refuses a second connection under a live peer id (4409); the first keeps working', async () => {
    const doc = fresh('sig/bind')
    const first = connect(await writer('wendy'))
    await first.welcomed()
    const second = connect(await reader('mallory'), first.peerId)
    expect(await second.closed).toEqual({ code: 4409, reason: expect.stringMatching(/in use by another live connection/) })
    expect(second.received).toEqual([])
    // Signals to that id still reach the first.
    await first.open(doc)
    const other = await joined(await reader('rick'), doc)
    other.signal(doc, first.peerId, { t: 'hi' })
    await gotFrom(first, other, doc)
    expect(first.isClosed()).toBe(false)
  })

  it('holds the id while its connection lives, and frees it once it closes', async () => {
    const first = connect(await writer('wendy'))
    await first.welcomed()
    expect((await connect(await writer('wendy'), first.peerId).closed).code).toBe(4409)
    first.ws.close()
    await first.closed
    // The relay may learn of the close a moment after the client (there is no event to
    // await): a claim that comes first is refused, and the next one, once it knows, is not.
    const token = await writer('wendy')
    for (let attempt = 0; ; attempt++) {
      const again = connect(token, first.peerId)
      const welcomed = await Promise.race([again.welcomed().then(() => true), again.closed.then(() => false)])
      if (welcomed) break
      expect((await again.closed).code).toBe(4409)
      expect(attempt).toBeLessThan(20)
      await new Promise(resolve => setTimeout(resolve, 20))
    }
  })

  it('binds ids on a replica that listens for peers too', async () => {
    const replica = new Replica({ store: new SqliteStore(join(root, `listener-${n++}.db`)) })
    const server = await listenForPeers(replica, { port: 0, open: true })
    try {
      const hello = (ws: WebSocket): void => {
        ws.on('open', () => ws.send(encodeNativeMessage({ type: 'hello', version: NATIVE_PROTOCOL_VERSION, peer: { peerId: 'twin', isRelay: false }, token: '' })))
      }
      const first = new WebSocket(server.url, NATIVE_SUBPROTOCOL)
      hello(first)
      await new Promise(resolve => first.once('message', resolve))
      const second = new WebSocket(server.url, NATIVE_SUBPROTOCOL)
      hello(second)
      const [code] = await new Promise<[number]>(resolve => second.once('close', (...args: [number]) => resolve(args)))
      expect(code).toBe(4409)
      expect(first.readyState).toBe(WebSocket.OPEN)
      first.close()
    } finally {
      await server.close()
      await replica.close()
    }
  })
})

describe('signals', () => {
  it('are stamped with the sender\'s bound id, write access and user, whatever it claims', async () => {
    const doc = fresh('sig/stamp')
    const w = await joined(await writer('wendy'), doc)
    const r = await joined(await reader('rick'), doc)
    w.signal(doc, r.peerId, { t: 'offer', sdp: 'v=0' }, { writable: false, user: 'forged' })
    r.signal(doc, '', { t: 'hi' }, { writable: true, user: 'wendy' })
    await Promise.all([gotFrom(r, w, doc), gotFrom(w, r, doc)])
    expect(r.signals(doc)).toEqual([expect.objectContaining({ peerId: w.peerId, writable: true, user: 'wendy' })])
    expect(w.signals(doc)).toEqual([expect.objectContaining({ peerId: r.peerId, writable: false, user: 'rick' })])
  })

  it('addressed go only to the connection bound to that id, and only if it has the document open', async () => {
    const doc = fresh('sig/addressed')
    const other = fresh('sig/addressed')
    const a = await joined(await reader('a'), doc, other)
    const b = await joined(await reader('b'), doc)
    const c = await joined(await reader('c'), doc)
    const d = await joined(await reader('d'), other) // connected, but not to `doc`
    // An impostor claiming b's id is refused, so it cannot open `doc` and get b's signals.
    const impostor = connect(await reader('mallory'), b.peerId)
    await Promise.race([impostor.open(doc), impostor.closed])
    a.signal(doc, b.peerId, { t: 'offer', sdp: 'for b' })
    a.signal(doc, d.peerId, { t: 'offer', sdp: 'for d, who does not have doc open' })
    a.signal(doc, 'nobody-' + randomUUID(), { t: 'offer', sdp: 'for no one' })
    // Markers: the relay passes one sender's signals on in order.
    a.signal(doc, c.peerId, { t: 'hi' })
    a.signal(other, d.peerId, { t: 'hi' })
    await Promise.all([gotFrom(b, a, doc), gotFrom(c, a, doc), gotFrom(d, a, other)])
    expect(payloads(b)).toEqual([{ t: 'offer', sdp: 'for b' }])
    expect(b.signals()).toEqual([expect.objectContaining({ peerId: a.peerId, user: 'a' })])
    expect(impostor.signals()).toEqual([])
    expect(payloads(c)).toEqual([{ t: 'hi' }])
    expect(d.signals()).toEqual([expect.objectContaining({ docId: other })])
    expect([a, b, c, d].some(client => client.isClosed())).toBe(false)
  })

  it('broadcast go only to clients that have the document open here and may read it', async () => {
    const doc = fresh('sig/broadcast')
    const other = fresh('sig/broadcast')
    const a = await joined(await reader('a'), doc, other)
    const b = await joined(await writer('b'), doc)
    const elsewhere = await joined(await reader('c'), other)
    const outsider = await joined(await signToken(SECRET, { sub: 'o', read: [other] }), other)
    await outsider.open(doc)
    expect(outsider.received).toContainEqual(expect.objectContaining({ type: 'doc-error', docId: doc, code: 4403 }))
    a.signal(doc, '', { t: 'hi' })
    a.signal(other, '', { t: 'hi' })
    await Promise.all([gotFrom(b, a, doc), gotFrom(elsewhere, a, other), gotFrom(outsider, a, other)])
    expect(b.signals()).toEqual([expect.objectContaining({ docId: doc, peerId: a.peerId, user: 'a' })])
    expect(elsewhere.signals()).toEqual([expect.objectContaining({ docId: other })])
    expect(outsider.signals()).toEqual([expect.objectContaining({ docId: other })])
    expect(a.signals()).toEqual([])
  })

  it('about a document the sender does not have open go nowhere', async () => {
    const doc = fresh('sig/closed')
    const other = fresh('sig/closed')
    const a = await joined(await reader('a'), doc, other)
    const c = await joined(await reader('c'), other)
    c.signal(doc, '', { t: 'hi' })
    c.signal(doc, a.peerId, { t: 'offer', sdp: 'uninvited' })
    c.signal(other, a.peerId, { t: 'hi' })
    await gotFrom(a, c, other)
    expect(a.signals()).toEqual([expect.objectContaining({ docId: other, peerId: c.peerId, user: 'c' })])
    expect(c.isClosed()).toBe(false)
  })

  it.each<[string, string, unknown, RegExp]>([
    ['a broadcast that is not a hi', '', { t: 'offer', sdp: 'to everyone' }, /to every client must be a hi/],
    ['an oversized payload', 'to', { t: 'offer', sdp: 'x'.repeat(33 * 1024) }, /larger than 32768 bytes/],
    ['a payload that is not JSON', 'to', encoder.encode('{"t":"hi"'), /not JSON/],
    ['a payload that is not an object', '', [1, 2], /not a JSON object/],
    ['a payload of an unknown kind', 'to', { t: 'bye' }, /"t" is not hi, offer, answer or ice/]
  ])('closes the sender of %s (4400); the others stay', async (_name, to, payload, reason) => {
    const doc = fresh('sig/hostile')
    const receiver = await joined(await reader('r'), doc)
    const sender = await joined(await reader('s'), doc)
    sender.signal(doc, to === '' ? '' : receiver.peerId, payload)
    expect(await sender.closed).toEqual({ code: 4400, reason: expect.stringMatching(reason) })
    expect(receiver.signals()).toEqual([])
    expect(receiver.isClosed()).toBe(false)
  })

  it('cost their sender every copy: a reader flooding 30 readers that do not read is closed (1008) long before any of them is dropped', async () => {
    const doc = fresh('sig/flood')
    const readers = await Promise.all(Array.from({ length: 30 }, async (_, i) => await joined(await reader(`r${i}`), doc)))
    // Stop reading: what the relay sends them piles up in its send buffers.
    for (const r of readers) (r.ws as unknown as { _socket: { pause(): void } })._socket.pause()
    const flooder = await joined(await reader('mallory'), doc)
    const hi = encodeNativeMessage({ type: 'signal', docId: doc, peerId: '', writable: false, user: '', payload: encoder.encode(JSON.stringify({ t: 'hi', pad: 'x'.repeat(30 * 1024) })) })
    const deadline = Date.now() + 10_000
    // The relay's word: a reader that does not read would not see its own close.
    const dropped = (): number => log.entries.filter(entry => entry.msg === 'dropping a slow reader').length
    while (!flooder.isClosed() && dropped() === 0 && Date.now() < deadline) {
      if (flooder.ws.bufferedAmount < 1024 * 1024) flooder.ws.send(hi)
      await new Promise(resolve => setImmediate(resolve))
    }
    // Give a late drop time to show.
    await new Promise(resolve => setTimeout(resolve, 300))
    expect({ flooderClosed: flooder.isClosed(), readersDropped: dropped() }).toEqual({ flooderClosed: true, readersDropped: 0 })
    expect(await flooder.closed).toEqual({ code: 1008, reason: expect.stringMatching(/signals to other clients over/) })
    // Still connected: a signal reaches one once it reads again.
    const [first] = readers
    ;(first!.ws as unknown as { _socket: { resume(): void } })._socket.resume()
    const other = await joined(await reader('later'), doc)
    other.signal(doc, first!.peerId, { t: 'hi' })
    await gotFrom(first!, other, doc)
  }, 20_000)
})

describe('the signaling budget', () => {
  it('lets a replica join a document with 100 other clients, and no more than its burst at once', () => {
    const budget = new SignalBudget()
    const now = 1_000_000
    // What a relay delivers for one replica joining: a hi to each, then an offer or answer and a dozen ICE candidates.
    const copy = 120 // a signal's frame, besides its payload: document and peer ids, the user
    budget.take(100 * (copy + 20), now)
    for (let peer = 0; peer < 100; peer++) {
      budget.take(copy + 1500, now)
      for (let candidate = 0; candidate < 12; candidate++) budget.take(copy + 250, now)
    }
    expect(() => budget.take(SIGNAL_BURST_BYTES / 2, now)).toThrow(/signals to other clients over/)
    // It refills: a second later, a second's worth goes again.
    budget.take(64 * 1024, now + 1000)
  })
})
