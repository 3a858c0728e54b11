/**
 * WebRTC between Node replicas (node-datachannel's implementation of the WebRTC API),
 * signaled through a relay: once both have a document open through the relay they link
 * directly, edits keep flowing when the relay stops, and a peer can do over the direct
 * link only what its token lets it do through the relay.
 */
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { RTCPeerConnection } from 'node-datachannel/polyfill'
import * as Y from 'yjs'
import { Replica } from '../client/replica.js'
import { SqliteStore } from '../client/node.js'
import type { RtcPeerConnection } from '../client/webrtc.js'
import { startRelay, type Relay } from '../server/relay.js'
import { until } from './helpers/events.js'
import { captureLog } from './helpers/log-capture.js'
import { tempDir } from './helpers/temp.js'
import { signToken } from './helpers/tokens.js'

const dir = tempDir()
let files = 0
const cleanups: Array<() => Promise<void>> = []
afterEach(async () => { for (const cleanup of cleanups.splice(0).reverse()) await cleanup() })

const webrtc = { RTCPeerConnection: RTCPeerConnection as unknown as new (configuration: object) => RtcPeerConnection }

async function relayWith (options: Parameters<typeof startRelay>[0] = {}): Promise<Relay> {
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
    () => r.peers(docId).some(peer => peer.peerId === other.self.peerId && peer.state === 'synced'))

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
    expect(a.peers('rtc/doc').map(peer => peer.durable)).toEqual([false])
  })

  it('refuses over the direct link what the relay would refuse: a read-only peer\'s writes', async () => {
    const secret = 'a-relay-secret-of-16+chars'
    const relay = await relayWith({ authKeys: new Map([['', secret]]) })
    const writer = replica(relay, await signToken(secret, { sub: 'w', write: ['rtc/*'] }))
    const reader = replica(relay, await signToken(secret, { sub: 'r', read: ['rtc/*'] }))
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
