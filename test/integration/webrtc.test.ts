/**
 * WebRTC between Node replicas (node-datachannel's implementation of the WebRTC API),
 * signaled through a relay: once both have a document open through the relay they link
 * directly, edits keep flowing when the relay stops, and a peer can do over the direct
 * link only what its token lets it do through the relay. Then signaling as an attacker uses
 * it: signals from a peer that never said hi, out of turn, or malformed change nothing and
 * throw nowhere (one `offer` used to end the process), a stranger's signals cannot touch a
 * link between two others, and presence over a direct link carries the user the relay
 * vouched for.
 */
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { RTCPeerConnection } from 'node-datachannel/polyfill'
import * as Y from 'yjs'
import { Replica } from '../../client/replica.js'
import { SqliteStore } from '../../client/node.js'
import type { RtcPeerConnection } from '../../client/webrtc.js'
import { startRelay, type Relay } from '../../server/relay.js'
import type { CommonRelayOptions } from '../../server/relay-options.js'
import { parseDocId, type DocId } from '../../shared/wire/doc-id.js'
import type { NativeMessage } from '../../shared/wire/native-messages.js'
import { until } from '../helpers/events.js'
import { captureLog } from '../helpers/log-capture.js'
import { nativeClient, type NativeClient } from '../helpers/native-client.js'
import { tempDir } from '../helpers/temp.js'
import { signToken } from '../helpers/tokens.js'

const dir = tempDir()
const SECRET = 'a-relay-secret-of-16+chars'
let files = 0
const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => { for (const cleanup of cleanups.splice(0).reverse()) await cleanup() })

const webrtc = { RTCPeerConnection: RTCPeerConnection as unknown as new (configuration: object) => RtcPeerConnection }

async function relayWith (options: CommonRelayOptions = {}): Promise<Relay> {
  const relay = await startRelay({ port: 0, dataDir: join(dir, `relay-${files++}`), logger: captureLog('error').logger, ...options })
  cleanups.push(() => relay.close())
  return relay
}

function replica (relay: Relay, token?: string): Replica {
  const r = new Replica({ store: new SqliteStore(join(dir, `r${files++}.db`)), relays: [relay.url], webrtc, minReconnectDelayMs: 5, maxReconnectDelayMs: 50, ...(token === undefined ? {} : { token }) })
  cleanups.push(() => r.close())
  return r
}

const textIs = (doc: Y.Doc, expected: string): Promise<void> =>
  until(`text to be ${JSON.stringify(expected)}`, cb => { doc.on('update', cb); return () => doc.off('update', cb) }, () => doc.getText('t').toString() === expected)

const linked = (r: Replica, docId: string, other: Replica): Promise<void> =>
  until('a direct link', cb => { r.on('peers', cb); return () => r.off('peers', cb) },
    () => r.doc(docId).peers.some(peer => peer.peerId === other.self.peerId && peer.state === 'acked'), 20_000) // ICE is slow on a loaded machine

describe('WebRTC signaled by a relay (Node, node-datachannel)', { timeout: 30_000 }, () => {
  it('links two replicas directly; edits keep flowing after the relay stops', async () => {
    const relay = await relayWith()
    const a = replica(relay)
    const b = replica(relay)
    const [docA, docB] = await Promise.all([a.open('rtc/doc'), b.open('rtc/doc')])
    docA.getText('t').insert(0, 'through the relay ')
    await textIs(docB, 'through the relay ')
    await Promise.all([linked(a, 'rtc/doc', b), linked(b, 'rtc/doc', a)])
    await relay.close()
    docB.getText('t').insert(0, 'direct: ')
    await textIs(docA, 'direct: through the relay ')
    expect(a.doc('rtc/doc').peers.map(peer => peer.isRelay)).toEqual([false])
  })

  it('refuses over the direct link what the relay would refuse: a read-only peer\'s writes', async () => {
    const relay = await relayWith({ authKeys: new Map([['', SECRET]]) })
    const writer = replica(relay, await signToken(SECRET, { sub: 'w', write: ['rtc/*'] }))
    const reader = replica(relay, await signToken(SECRET, { sub: 'r', read: ['rtc/*'] }))
    const [docW, docR] = await Promise.all([writer.open('rtc/guarded'), reader.open('rtc/guarded')])
    docW.getText('t').insert(0, 'only the writer writes')
    await textIs(docR, 'only the writer writes')
    await Promise.all([linked(writer, 'rtc/guarded', reader), linked(reader, 'rtc/guarded', writer)])
    const refused = new Promise<number>(resolve => reader.on('refused', ({ code }) => resolve(code)))
    docR.getText('t').insert(0, 'sneaky ')
    expect(await refused).toBe(4403)
    expect(docW.getText('t').toString()).toBe('only the writer writes')
  })
})

/** A signal to `peerId` about `docId`, as a client sends it to the relay. */
const signal = (docId: DocId, peerId: string, payload: unknown): NativeMessage =>
  ({ type: 'signal', docId, peerId, writable: false, user: '', payload: new TextEncoder().encode(JSON.stringify(payload)) })

/** A real SDP offer, from a connection that will never answer. */
async function realOffer (): Promise<string> {
  const rtc = new RTCPeerConnection({ iceServers: [] })
  cleanups.push(() => rtc.close())
  rtc.createDataChannel('x')
  const offer = await rtc.createOffer()
  await rtc.setLocalDescription(offer)
  return offer.sdp ?? ''
}

/** An attacker's native connection to `relay` with `docId` open, under an id that sorts before any replica's (so it may offer). */
async function attacker (relay: Relay, docId: DocId, token = ''): Promise<NativeClient> {
  const client = await nativeClient(relay.url, { token, peerId: '0-attacker', messages: [{ type: 'open', docId, stateVector: new Uint8Array([0]) }] })
  cleanups.push(() => client.close())
  await client.until('the document to open', received => received.some(message => message.type === 'sync'))
  return client
}

/** Resolves once the victim answered the attacker's latest hi: everything the attacker sent before has been handled. */
async function handled (client: NativeClient, victim: Replica, docId: DocId): Promise<void> {
  const answersBefore = client.received.filter(message => message.type === 'signal' && message.peerId === victim.self.peerId).length
  client.send(signal(docId, victim.self.peerId, { t: 'hi' }))
  await client.until('the victim to answer hi', received => received.filter(message => message.type === 'signal' && message.peerId === victim.self.peerId).length > answersBefore)
}

describe('WebRTC signals from an attacker', { timeout: 30_000 }, () => {
  it('an offer from a peer that never said hi, and malformed or out-of-turn signals, throw nowhere and change nothing', async () => {
    const relay = await relayWith()
    const docId = parseDocId('rtc/victim')
    const victim = replica(relay)
    const other = replica(relay)
    const [docV, docO] = await Promise.all([victim.open(docId), other.open(docId)])
    const evil = await attacker(relay, docId)
    const to = victim.self.peerId
    // Before any hi: a real offer (it used to make the victim signal to an undefined document, which threw inside node-datachannel and ended the process).
    evil.send(signal(docId, to, { t: 'offer', sdp: await realOffer() }))
    // Nothing answers an ignored offer, so there is no event to wait for: give a victim that
    // did answer it the time to gather candidates (it ended 15 ms after the offer) before a hi.
    await new Promise(resolve => setTimeout(resolve, 300))
    evil.send(signal(docId, to, { t: 'ice', candidate: { candidate: 'candidate:1 1 UDP 1 127.0.0.1 9 typ host', sdpMid: '0' } }))
    evil.send(signal(docId, to, { t: 'answer', sdp: 'v=0' }))
    await handled(evil, victim, docId)
    // After a hi: garbage where an offer goes, an answer to an offer never made, signals that are not signals.
    evil.send(signal(docId, to, { t: 'offer', sdp: 'not an sdp' }))
    evil.send(signal(docId, to, { t: 'answer', sdp: 'not an answer' }))
    evil.send(signal(docId, to, { t: 'ice', candidate: 42 }))
    await handled(evil, victim, docId)
    // What is not a signal at all never reaches the victim: the relay closes its sender (see signaling.test.ts).
    evil.send({ type: 'signal', docId, peerId: to, writable: true, user: 'admin', payload: new Uint8Array([0xff, 0xfe]) })
    expect(await evil.closed).toMatchObject({ code: 4400 })
    // The victim still syncs, through the relay and directly.
    docO.getText('t').insert(0, 'still here')
    await textIs(docV, 'still here')
    await Promise.all([linked(victim, docId, other), linked(other, docId, victim)])
    // No link with the attacker came of it.
    expect(victim.doc(docId).peers.filter(peer => !peer.isRelay).map(peer => peer.peerId)).toEqual([other.self.peerId])
  })

  it('a stranger\'s signals cannot touch a direct link between two others', async () => {
    const relay = await relayWith({ authKeys: new Map([['', SECRET]]) })
    const docId = parseDocId('rtc/pair')
    const writer = replica(relay, await signToken(SECRET, { sub: 'w', write: ['rtc/*'] }))
    const victim = replica(relay, await signToken(SECRET, { sub: 'v', write: ['rtc/*'] }))
    const [docW, docV] = await Promise.all([writer.open(docId), victim.open(docId)])
    await Promise.all([linked(writer, docId, victim), linked(victim, docId, writer)])
    const token = await signToken(SECRET, { sub: 'mallory', read: ['rtc/*'] })
    // The relay binds ids to connections: the attacker cannot be the writer or the victim there.
    for (const peerId of [writer.self.peerId, victim.self.peerId]) {
      const impostor = await nativeClient(relay.url, { token, peerId })
      cleanups.push(() => impostor.close())
      expect(await impostor.closed).toMatchObject({ code: 4409 })
    }
    const evil = await attacker(relay, docId, token)
    // A bogus answer as the writer used to make the victim drop its link to it; as itself, it touches nothing.
    for (const to of [victim.self.peerId, writer.self.peerId]) {
      evil.send(signal(docId, to, { t: 'hi' }))
      evil.send(signal(docId, to, { t: 'answer', sdp: 'v=0' }))
      evil.send(signal(docId, to, { t: 'offer', sdp: 'v=0' }))
    }
    await handled(evil, victim, docId)
    await handled(evil, writer, docId)
    await relay.close()
    docW.getText('t').insert(0, 'direct, unbroken')
    await textIs(docV, 'direct, unbroken')
  })

  it('presence over a direct link carries the user the relay vouched for', async () => {
    const relay = await relayWith({ authKeys: new Map([['', SECRET]]) })
    const docId = parseDocId('rtc/presence')
    const writer = replica(relay, await signToken(SECRET, { sub: 'w', write: ['rtc/*'] }))
    const reader = replica(relay, await signToken(SECRET, { sub: 'r', read: ['rtc/*'] }))
    await Promise.all([writer.open(docId), reader.open(docId)])
    await Promise.all([linked(writer, docId, reader), linked(reader, docId, writer)])
    await relay.close()
    const awareness = reader.doc(docId).awareness
    awareness.setLocalState({ name: 'r', sub: 'someone-else' })
    const seen = writer.doc(docId).awareness
    await until('the reader\'s presence', cb => { seen.on('change', cb); return () => seen.off('change', cb) }, () => (seen.getStates().get(awareness.clientID) as { name?: string } | undefined)?.name === 'r')
    expect(seen.getStates().get(awareness.clientID)).toEqual({ name: 'r', sub: 'r' })
  })
})
