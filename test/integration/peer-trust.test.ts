/**
 * What a peer says about itself is not believed: a listener that answers WELCOME as a
 * durable relay and acknowledges everything makes nothing durable, in memory or in the
 * saved counters; a peer's refusals are not the relay's (a "deleted" from a peer deletes
 * nothing); a link made with a vouched id is closed when the other end names another.
 */
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import WebSocket, { WebSocketServer } from 'ws'
import { Replica } from '../../client/replica.js'
import { SqliteStore } from '../../client/node.js'
import { CloseCode } from '../../shared/wire/close-codes.js'
import { parseDocId } from '../../shared/wire/doc-id.js'
import { NATIVE_PROTOCOL_VERSION, NATIVE_SUBPROTOCOL, decodeNativeMessage, encodeNativeMessage, type NativeMessage } from '../../shared/wire/native-messages.js'
import { PeerConnection } from '../../shared/sync/connection.js'
import { linkPair } from '../../shared/transport/link.js'
import { until } from '../helpers/events.js'
import { tempDir } from '../helpers/temp.js'

const dir = tempDir()
let files = 0
const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => { for (const cleanup of cleanups.splice(0).reverse()) await cleanup() })

/** What a lying listener does besides acknowledging as a relay would. */
interface Liar {
  url: string
  /** Acknowledgements it sent. */
  acks: number
  /** Sends every connected replica a message. */
  tell(message: NativeMessage): void
}

/** A listener that says it is a durable relay and acknowledges every update at once. */
async function lyingListener (): Promise<Liar> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: () => NATIVE_SUBPROTOCOL })
  await new Promise(resolve => wss.once('listening', resolve))
  cleanups.push(() => new Promise<void>(resolve => { for (const ws of wss.clients) ws.terminate(); wss.close(() => resolve()) }))
  const sockets = new Set<WebSocket>()
  const liar: Liar = {
    url: `ws://127.0.0.1:${(wss.address() as { port: number }).port}`,
    acks: 0,
    tell: message => { for (const ws of sockets) ws.send(encodeNativeMessage(message)) }
  }
  wss.on('connection', ws => {
    sockets.add(ws)
    ws.on('close', () => sockets.delete(ws))
    const send = (message: NativeMessage): void => ws.send(encodeNativeMessage(message))
    ws.on('message', (data: Buffer) => {
      const message = decodeNativeMessage(new Uint8Array(data))
      if (message.type === 'hello') send({ type: 'welcome', version: NATIVE_PROTOCOL_VERSION, peer: { peerId: 'i-am-a-relay', isRelay: true } })
      if (message.type === 'open') send({ type: 'sync', docId: message.docId, stateVector: new Uint8Array([0]), update: new Uint8Array([0, 0]) })
      if (message.type === 'update' && message.seq > 0) {
        send({ type: 'ack', docId: message.docId, seq: message.seq })
        liar.acks++
      }
    })
  })
  return liar
}

function replica (path: string, peers: string[]): Replica {
  // The relay is unreachable: only the liar answers.
  const r = new Replica({ store: new SqliteStore(path), relays: ['ws://127.0.0.1:9'], peers, minReconnectDelayMs: 5, maxReconnectDelayMs: 50 })
  cleanups.push(() => r.close())
  return r
}

describe('a peer that says it is a relay', () => {
  it('makes nothing durable: not durable(), not pending, not the status, not the saved counters', async () => {
    const liar = await lyingListener()
    const path = join(dir, `r${files++}.db`)
    const r = replica(path, [liar.url])
    const handle = r.doc('trust/doc')
    await handle.whenLoaded()
    handle.ydoc.getText('t').insert(0, 'only saved here')
    let durable = false
    handle.durable().then(() => { durable = true }, () => {})
    // The liar acknowledged the change, and the replica handled the acknowledgement.
    await until('the liar to acknowledge', cb => { r.on('peers', cb); return () => r.off('peers', cb) },
      () => liar.acks > 0 && r.doc('trust/doc').peers.some(peer => peer.state === 'acked'))
    expect(r.doc('trust/doc').peers).toEqual([{ peerId: 'i-am-a-relay', isRelay: false, state: 'acked' }])
    expect(handle.pending).toBe(1)
    expect(handle.status).toBe('saved')
    await new Promise(resolve => setImmediate(resolve))
    expect(durable).toBe(false)

    await r.close()
    const again = replica(path, [])
    const reopened = again.doc('trust/doc')
    await reopened.whenLoaded()
    expect(reopened.pending).toBe(1)
    expect(reopened.status).toBe('saved')
  })

  it('cannot make the replica delete a document, nor mark it refused', async () => {
    const liar = await lyingListener()
    const path = join(dir, `r${files++}.db`)
    const r = replica(path, [liar.url])
    const handle = r.doc('trust/kept')
    await handle.whenLoaded()
    handle.ydoc.getText('t').insert(0, 'mine')
    await until('the liar to acknowledge', cb => { r.on('peers', cb); return () => r.off('peers', cb) }, () => liar.acks > 0)
    const refusals: number[] = []
    r.on('refused', ({ code }) => refusals.push(code))
    const docId = parseDocId('trust/kept')
    liar.tell({ type: 'doc-error', docId, code: CloseCode.deleted, reason: 'deleted, trust me' })
    liar.tell({ type: 'doc-error', docId, code: CloseCode.forbidden, reason: 'forbidden, trust me' })
    await until('both refusals', cb => { r.on('refused', cb); return () => r.off('refused', cb) }, () => refusals.length === 2)
    expect(refusals).toEqual([CloseCode.deleted, CloseCode.forbidden])
    expect(handle.status).toBe('saved')
    expect(handle.refusal).toBeNull()
    expect(await r.list('trust/')).toEqual(['trust/kept'])
    expect(handle.ydoc.getText('t').toString()).toBe('mine')
  })
})

describe('a link made with a vouched peer id', () => {
  it('closes when the other end names another id, and never believes an accepted peer durable', async () => {
    const [dialing, accepting] = linkPair()
    const closed = new Promise<{ code: number, reason: string }>(resolve => {
      const dialer = new PeerConnection(dialing, { self: { peerId: 'me', isRelay: false }, token: () => '', expectedPeerId: 'vouched', onClose: (code, reason) => resolve({ code, reason }) })
      cleanups.push(() => dialer.close(1000, 'done'))
    })
    const acceptor = new PeerConnection(accepting, { self: { peerId: 'impostor', isRelay: true } })
    cleanups.push(() => acceptor.close(1000, 'done'))
    expect(await closed).toEqual({ code: 4400, reason: 'the peer says it is "impostor", but the link was made with "vouched"' })

    // An acceptor with no admission takes a HELLO that says durable as not durable.
    const [a, b] = linkPair()
    const welcomed = new Promise<boolean>(resolve => {
      const accept = new PeerConnection(b, { self: { peerId: 'tab', isRelay: false }, onReady: peer => resolve(peer.isRelay) })
      cleanups.push(() => accept.close(1000, 'done'))
    })
    const dial = new PeerConnection(a, { self: { peerId: 'liar', isRelay: true }, token: () => '' })
    cleanups.push(() => dial.close(1000, 'done'))
    expect(await welcomed).toBe(false)
  })
})
