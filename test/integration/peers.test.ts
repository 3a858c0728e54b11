/**
 * Node replicas syncing peer to peer (`listenForPeers` and `peers: [url]`), over real
 * WebSockets on loopback and real SQLite files: without a relay, along a chain, with a
 * stock y-websocket client, across a restart of the listening replica, bridged to a relay,
 * and against hostile input and tokens.
 */
import { join } from 'node:path'
import { afterEach, describe, expect, it, vi } from 'vitest'
import WebSocket from 'ws'
import * as Y from 'yjs'
import { Replica } from '../../client/replica.js'
import { LocalDoc } from '../../client/local-doc.js'
import { listenForPeers, SqliteStore, type PeerServer } from '../../client/node.js'
import { startRelay, type Relay } from '../../server/relay.js'
import { NATIVE_PROTOCOL_VERSION, NATIVE_SUBPROTOCOL, encodeNativeMessage } from '../../shared/wire/native-messages.js'
import { parseDocId } from '../../shared/wire/doc-id.js'
import { encodeSyncUpdate } from '../../shared/wire/y-messages.js'
import { once, until } from '../helpers/events.js'
import { captureLog } from '../helpers/log-capture.js'
import { stockClient } from '../helpers/stock-client.js'
import { tempDir } from '../helpers/temp.js'
import { sendUpdates } from '../helpers/update-sender.js'
import { signToken } from '../helpers/tokens.js'

const dir = tempDir()
let files = 0
const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

function replica (options: { peers?: string[], relays?: string[], path?: string, token?: string } = {}): Replica {
  const r = new Replica({ store: new SqliteStore(options.path ?? join(dir, `r${files++}.db`)), minReconnectDelayMs: 5, maxReconnectDelayMs: 50, ...options })
  cleanups.push(() => r.close())
  return r
}

async function listening (r: Replica, options: Parameters<typeof listenForPeers>[1] = {}): Promise<PeerServer> {
  const server = await listenForPeers(r, { host: '127.0.0.1', port: 0, ...(options.auth === undefined ? { open: true } : {}), ...options })
  cleanups.push(() => server.close())
  return server
}

const textIs = (doc: Y.Doc, expected: string, timeoutMs?: number): Promise<void> =>
  until(`text to be ${JSON.stringify(expected)} (is ${JSON.stringify(doc.getText('t').toString())})`,
    cb => { doc.on('update', cb); return () => doc.off('update', cb) }, () => doc.getText('t').toString() === expected, timeoutMs)

const peersSynced = (r: Replica, docId: string, count: number): Promise<void> =>
  until(`${count} synced peer(s) of ${docId}`, cb => { r.on('peers', cb); return () => r.off('peers', cb) },
    () => r.doc(docId).peers.filter(peer => peer.state === 'acked').length === count)

describe('Node peers', () => {
  it('sync two replicas with no relay, both ways; a peer\'s acknowledgement is not durability', async () => {
    const a = replica()
    const server = await listening(a)
    expect(server.url).toMatch(/^ws:\/\/127\.0\.0\.1:\d+$/)
    const b = replica({ peers: [server.url] })
    const docA = await a.open('p2p/doc')
    const docB = await b.open('p2p/doc')
    docB.getText('t').insert(0, 'from b ')
    await textIs(docA, 'from b ')
    docA.getText('t').insert(7, 'from a')
    await textIs(docB, 'from b from a')
    await Promise.all([peersSynced(a, 'p2p/doc', 1), peersSynced(b, 'p2p/doc', 1)])
    expect(b.doc('p2p/doc').peers).toEqual([{ peerId: a.self.peerId, isRelay: false, state: 'acked' }])
    expect(a.doc('p2p/doc').peers).toEqual([{ peerId: b.self.peerId, isRelay: false, state: 'acked' }])
    // No relay acknowledged anything: every local change is still pending on both sides.
    expect(b.doc('p2p/doc').pending).toBe(1)
    expect(a.doc('p2p/doc').pending).toBe(1)
  })

  it('carries edits along a chain c → b → a, both ways', async () => {
    const a = replica()
    const b = replica({ peers: [(await listening(a)).url] })
    const c = replica({ peers: [(await listening(b)).url] })
    const [docA, docB, docC] = await Promise.all([a.open('chain'), b.open('chain'), c.open('chain')])
    docC.getText('t').insert(0, 'c')
    await textIs(docA, 'c')
    docA.getText('t').insert(1, 'a')
    await textIs(docC, 'ca')
    expect(docB.getText('t').toString()).toBe('ca')
  })

  it('passes on updates that wait in the middle peer for what they depend on, however many wait at once', async () => {
    // b holds two updates that wait for a third, then gets the third: c must end up with all three.
    const b = replica()
    const server = await listening(b)
    const c = replica({ peers: [server.url] })
    const [docB, docC] = await Promise.all([b.open('waiting/doc'), c.open('waiting/doc')])
    docC.getText('t').insert(0, 'c is here')
    await textIs(docB, 'c is here') // the link is up both ways
    const source = new Y.Doc()
    const steps: Uint8Array[] = []
    source.on('update', (update: Uint8Array) => steps.push(update))
    for (const part of ['one ', 'two ', 'three']) source.getText('s').insert(source.getText('s').length, part)
    const [first, second, third] = steps as [Uint8Array, Uint8Array, Uint8Array]
    // Each on its own stock connection to b; each waits at b (and at c) until `first` arrives.
    expect(await sendUpdates(server.url, 'waiting/doc', [third])).toBe('stored')
    expect(await sendUpdates(server.url, 'waiting/doc', [second])).toBe('stored')
    expect(await sendUpdates(server.url, 'waiting/doc', [first])).toBe('stored')
    const sIs = (doc: Y.Doc): Promise<void> => until(`s to be complete (is ${JSON.stringify(doc.getText('s').toString())})`,
      cb => { doc.on('update', cb); return () => doc.off('update', cb) }, () => doc.getText('s').toString() === 'one two three')
    await sIs(docB)
    await sIs(docC)
  })

  it('serves a stock y-websocket client, with the document id as room', async () => {
    const a = replica()
    const server = await listening(a)
    const docA = await a.open('notes/stock')
    docA.getText('t').insert(0, 'replica ')
    const stock = stockClient(server.url, 'notes/stock')
    cleanups.push(() => stock.destroy())
    await stock.synced()
    await stock.textIs('replica ')
    stock.text.insert(8, 'stock')
    await textIs(docA, 'replica stock')
  })

  it('serves a document no app opened from its store, and closes it again when the peer leaves', async () => {
    const path = join(dir, 'serving.db')
    const first = new Replica({ store: new SqliteStore(path) })
    ;(await first.open('stored/only')).getText('t').insert(0, 'kept on disk')
    await first.close()
    const a = replica({ path })
    const server = await listening(a)
    // Asking `a` for the document would open it for the app: watch its closing instead.
    const closes = vi.spyOn(LocalDoc.prototype, 'close')
    const b = replica({ peers: [server.url] })
    await textIs(await b.open('stored/only'), 'kept on disk')
    await b.close()
    await until('the served document to close', cb => { const t = setInterval(cb, 5); return () => clearInterval(t) },
      () => closes.mock.contexts.some(local => (local as LocalDoc | undefined)?.docId === 'stored/only'))
    closes.mockRestore()
  })

  it('keeps syncing when the listening replica restarts on the same port while its peer edits', async () => {
    const path = join(dir, 'restarting.db')
    let a = new Replica({ store: new SqliteStore(path) })
    let server = await listenForPeers(a, { port: 0, open: true })
    const port = Number(new URL(server.url).port)
    const b = replica({ peers: [server.url] })
    const docB = await b.open('restart')
    let docA = await a.open('restart')
    docB.getText('t').insert(0, 'one ')
    await textIs(docA, 'one ')
    await server.close()
    await a.close()
    docB.getText('t').insert(4, 'two ') // while the peer is down
    a = new Replica({ store: new SqliteStore(path) })
    server = await listenForPeers(a, { port, open: true })
    cleanups.push(() => server.close(), () => a.close())
    docA = await a.open('restart')
    docA.getText('t').insert(0, '> ')
    await textIs(docA, '> one two ')
    await textIs(docB, '> one two ')
  })

  it('bridges a peer with no relay of its own to the relay of the replica it dials', async () => {
    const relay = await startRelay({ port: 0, dataDir: join(dir, 'relay'), logger: captureLog('warn').logger })
    cleanups.push(() => relay.close())
    const b = replica({ relays: [relay.url] })
    const c = replica({ peers: [(await listening(b)).url] })
    const docC = await c.open('bridged')
    docC.getText('t').insert(0, 'via b')
    // A replica of the relay alone sees c's edit, which b forwarded from a document only c opened.
    const d = replica({ relays: [relay.url] })
    await textIs(await d.open('bridged'), 'via b')
    expect(c.doc('bridged').peers.map(peer => peer.isRelay)).toEqual([false])
  })

  it('closes hostile connections, stores nothing from them, and keeps serving honest peers', async () => {
    const a = replica()
    const server = await listening(a, { limits: { maxFrameBytes: 64 * 1024 } })
    const docA = await a.open('hostile')
    docA.getText('t').insert(0, 'precious')
    const b = replica({ peers: [server.url] })
    const docB = await b.open('hostile')
    await textIs(docB, 'precious')
    const before = Y.encodeStateAsUpdate(docA)

    const closeOf = async (ws: WebSocket, frame: Uint8Array | string): Promise<number> => {
      ws.on('error', () => {})
      await once(ws, 'open')
      ws.send(frame)
      const [code] = await once<[number]>(ws, 'close')
      return code
    }
    const malformed = Y.encodeStateAsUpdate(docA).slice(0, 5)
    expect(await closeOf(new WebSocket(`${server.url}/hostile`), 'text')).toBe(1003)
    expect(await closeOf(new WebSocket(`${server.url}/hostile`), encodeSyncUpdate(malformed))).toBe(4400)
    expect(await closeOf(new WebSocket(`${server.url}/hostile`), new Uint8Array(70 * 1024))).toBe(1009)
    expect(await closeOf(new WebSocket(server.url, NATIVE_SUBPROTOCOL), new Uint8Array([99]))).toBe(4400)
    const native = new WebSocket(server.url, NATIVE_SUBPROTOCOL)
    native.on('open', () => {
      native.send(encodeNativeMessage({ type: 'hello', version: NATIVE_PROTOCOL_VERSION, peer: { peerId: 'x', isRelay: false }, token: '' }))
      native.send(encodeNativeMessage({ type: 'open', docId: parseDocId('hostile'), stateVector: new Uint8Array([0]) }))
    })
    expect(await closeOf(native, encodeNativeMessage({ type: 'update', docId: parseDocId('hostile'), seq: 1, update: malformed }))).toBe(4400)

    expect(Y.encodeStateAsUpdate(docA)).toEqual(before)
    docB.getText('t').insert(8, '!')
    await textIs(docA, 'precious!')
  })

  it('applies the relay\'s token rules: no token, and writes with a read-only token, are refused', async () => {
    const secret = 'a-peer-secret-of-16+chars'
    const a = replica()
    const server = await listening(a, { auth: [secret] })
    const docA = await a.open('guarded/doc')
    docA.getText('t').insert(0, 'owner')

    const anonymous = new WebSocket(`${server.url}/guarded/doc`)
    const [code] = await once<[number]>(anonymous, 'close')
    expect(code).toBe(4401)

    const reader = replica({ peers: [server.url], token: await signToken(secret, { read: ['guarded/*'] }) })
    const refused = new Promise<number>(resolve => reader.on('refused', ({ code }) => resolve(code)))
    const docR = await reader.open('guarded/doc')
    await textIs(docR, 'owner')
    docR.getText('t').insert(0, 'intruder ')
    expect(await refused).toBe(4403)
    expect(docA.getText('t').toString()).toBe('owner')

    const writer = replica({ peers: [server.url], token: await signToken(secret, { write: ['guarded/*'] }) })
    const docW = await writer.open('guarded/doc')
    await textIs(docW, 'owner')
    docW.getText('t').insert(0, 'friend ')
    await textIs(docA, 'friend owner')
  })
})
