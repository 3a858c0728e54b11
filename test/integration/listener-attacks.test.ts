/**
 * A replica that listens for peers faces what a relay faces, and gets a relay's treatment
 * of it: a peer opening document after document is refused past a bound, and cannot cut
 * the listener's own relay connection; a peer cannot overwrite presence that another link
 * brought; a listener with no token keys must be asked for. Real relay, real sockets.
 */
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { Replica } from '../../client/replica.js'
import { listenForPeers, SqliteStore } from '../../client/node.js'
import * as Y from 'yjs'
import { parseDocId, type DocId } from '../../shared/wire/doc-id.js'
import { encodeAwarenessEntries } from '../../shared/wire/awareness.js'
import { startRelay, type Relay } from '../../server/relay.js'
import type { CommonRelayOptions } from '../../server/relay-options.js'
import { until } from '../helpers/events.js'
import { captureLog } from '../helpers/log-capture.js'
import { craftUpdate } from '../helpers/crafted-updates.js'
import { nativeClient } from '../helpers/native-client.js'
import { stockClient } from '../helpers/stock-client.js'
import { tcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js'
import { tempDir } from '../helpers/temp.js'

const dir = tempDir()
let files = 0
const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => { for (const cleanup of cleanups.splice(0).reverse()) await cleanup() })

async function relayBehindProxy (options: CommonRelayOptions = {}): Promise<{ relay: Relay, proxy: TcpProxy }> {
  const relay = await startRelay({ port: 0, dataDir: join(dir, `relay-${files++}`), logger: captureLog('error').logger, ...options })
  cleanups.push(() => relay.close())
  const proxy = await tcpProxy(() => relay.port)
  cleanups.push(() => proxy.close())
  return { relay, proxy }
}

function replica (relays: string[]): Replica {
  const r = new Replica({ store: new SqliteStore(join(dir, `r${files++}.db`)), relays, minReconnectDelayMs: 5, maxReconnectDelayMs: 50 })
  cleanups.push(() => r.close())
  return r
}

/** Resolves once a fresh client of `relay` reads `docId` as `expected` (its root texts t and u, joined by '|'). */
async function relayHas (relay: Relay, docId: DocId, expected: string): Promise<void> {
  const client = stockClient(relay.url, docId)
  cleanups.push(() => client.destroy())
  const read = (): string => `${client.doc.getText('t').toString()}|${client.doc.getText('u').toString()}`
  await until(`the relay to hold ${expected} (holds ${read()})`, cb => { client.doc.on('update', cb); return () => client.doc.off('update', cb) }, () => read() === expected)
}

async function listening (r: Replica, options: Parameters<typeof listenForPeers>[1] = {}): Promise<string> {
  const server = await listenForPeers(r, { open: true, ...options })
  cleanups.push(() => server.close())
  return server.url
}

describe('updates from a peer of a listening replica', () => {
  it('are checked as a relay checks them: an item between lists is refused, neither stored nor forwarded, and the relay link stays up', async () => {
    const { relay, proxy } = await relayBehindProxy()
    const listener = replica([proxy.url])
    const url = await listening(listener)
    const docId = parseDocId('items/doc')
    const handle = listener.doc(docId)
    await handle.synced()
    // Items in two lists (what the attacker refers to), through the listener, durable on the relay.
    const base = craftUpdate([{ client: 1, clock: 0, structs: [{ parent: 't', text: 'a' }] }, { client: 2, clock: 0, structs: [{ parent: 'u', text: 'b' }] }])
    const honest = await nativeClient(url, { messages: [{ type: 'open', docId, stateVector: new Uint8Array([0]) }, { type: 'update', docId, seq: 1, update: base }] })
    cleanups.push(() => honest.close())
    await honest.until('the update acknowledged', received => received.some(message => message.type === 'ack'))
    await relayHas(relay, docId, 'a|b')
    const before = Y.encodeStateAsUpdate(handle.ydoc)

    const evil = await nativeClient(url, { messages: [{ type: 'open', docId, stateVector: new Uint8Array([0]) }] })
    cleanups.push(() => evil.close())
    await evil.until('the document', received => received.some(message => message.type === 'sync'))
    evil.send({ type: 'update', docId, seq: 1, update: craftUpdate([{ client: 3, clock: 0, structs: [{ origin: [1, 0], right: [2, 0], text: 'd' }] }]) })
    expect(await evil.closed).toMatchObject({ code: 4400, reason: expect.stringMatching(/different lists/) })
    expect(evil.received.at(-1)).toMatchObject({ type: 'doc-error', docId, code: 4400 })
    expect(Y.encodeStateAsUpdate(handle.ydoc)).toEqual(before)
    // The relay never saw it, and never had cause to close the listener's link.
    handle.ydoc.getText('t').insert(0, '>')
    await handle.durable()
    await relayHas(relay, docId, '>a|b')
    expect(proxy.accepted).toBe(1)
  })

  it('are held to the relay\'s limits on waiting updates and on clients per document', async () => {
    const limits = { maxWaitingBytes: 1024, maxClientsPerDocument: 20 }
    const listener = replica([])
    const url = await listening(listener, { limits })
    const docId = parseDocId('limits/doc')
    const handle = listener.doc(docId)
    await handle.whenLoaded()
    // Updates that wait for a client nobody has, past the bytes allowed to wait.
    const waiting = await nativeClient(url, { messages: [{ type: 'open', docId, stateVector: new Uint8Array([0]) }] })
    cleanups.push(() => waiting.close())
    await waiting.until('the document', received => received.some(message => message.type === 'sync'))
    for (let i = 0; i < 20; i++) waiting.send({ type: 'update', docId, seq: i + 1, update: craftUpdate([{ client: 100 + i, clock: 0, structs: [{ origin: [99, 5], text: 'w'.repeat(100) }] }]) })
    expect(await waiting.closed).toMatchObject({ code: 1008, reason: expect.stringMatching(/wait for missing dependencies/) })
    // Clients past the limit.
    const many = await nativeClient(url, { messages: [{ type: 'open', docId, stateVector: new Uint8Array([0]) }] })
    cleanups.push(() => many.close())
    await many.until('the document', received => received.some(message => message.type === 'sync'))
    many.send({ type: 'update', docId, seq: 1, update: craftUpdate(Array.from({ length: 30 }, (_, i) => ({ client: 500 + i, clock: 0, structs: [{ parent: 't', text: 'c' }] }))) })
    expect(await many.closed).toMatchObject({ code: 1008, reason: expect.stringMatching(/more than 20 clients/) })
  })
})

describe('a peer opening many documents on a listening replica', () => {
  it('is refused past maxDocuments (1013), and cannot cut the listener\'s relay connection or starve its own documents', async () => {
    // The relay allows 10 documents per connection; before, every document a peer opened went onto the listener's one relay connection.
    const { proxy } = await relayBehindProxy({ limits: { maxDocsPerConnection: 10 } })
    const listener = replica([proxy.url])
    const url = await listening(listener, { maxDocuments: 5 })
    const own = listener.doc('own/notes')
    await own.synced()
    const peer = await nativeClient(url)
    cleanups.push(() => peer.close())
    for (let i = 0; i < 20; i++) peer.send({ type: 'open', docId: parseDocId(`peer/doc-${i}`), stateVector: new Uint8Array([0]) })
    await peer.until('an answer to every open', received => received.filter(message => message.type === 'sync' || message.type === 'doc-error').length === 20)
    const refusals = peer.received.filter(message => message.type === 'doc-error')
    expect(refusals.length).toBe(15)
    expect(refusals[0]).toMatchObject({ code: 1013, reason: 'this replica serves at most 5 documents to peers at once' })
    own.ydoc.getText('t').insert(0, 'mine, durable')
    await own.durable()
    expect(proxy.accepted).toBe(1)
    // Once the peer leaves, its documents are closed and the room is free again.
    peer.close()
    const next = await nativeClient(url, { messages: [{ type: 'open', docId: parseDocId('peer/later'), stateVector: new Uint8Array([0]) }] })
    cleanups.push(() => next.close())
    await next.until('the document', received => received.some(message => message.type === 'sync'))
  })
})

describe('presence on a listening replica', () => {
  it('a peer cannot overwrite or remove a state another link brought', async () => {
    const { relay } = await relayBehindProxy()
    const listener = replica([relay.url])
    const url = await listening(listener)
    const docId = 'presence/doc'
    await listener.doc(docId).synced()
    const other = stockClient(relay.url, docId)
    cleanups.push(() => other.destroy())
    other.provider.awareness.setLocalState({ name: 'honest' })
    const seen = listener.doc(docId).awareness
    const honestId = other.doc.clientID
    await until('the honest state', cb => { seen.on('change', cb); return () => seen.off('change', cb) }, () => (seen.getStates().get(honestId) as { name?: string } | undefined)?.name === 'honest')
    const peer = await nativeClient(url, { messages: [{ type: 'open', docId: parseDocId(docId), stateVector: new Uint8Array([0]) }] })
    cleanups.push(() => peer.close())
    await peer.until('the document', received => received.some(message => message.type === 'sync'))
    peer.send({ type: 'awareness', docId: parseDocId(docId), update: encodeAwarenessEntries([{ clientId: honestId, clock: 1000, state: { name: 'forged' } }]) })
    peer.send({ type: 'awareness', docId: parseDocId(docId), update: encodeAwarenessEntries([{ clientId: honestId, clock: 1001, state: null }]) })
    // Its own state still gets in: the peer's messages have been handled once it is there.
    peer.send({ type: 'awareness', docId: parseDocId(docId), update: encodeAwarenessEntries([{ clientId: 4242, clock: 1, state: { name: 'peer' } }]) })
    await until('the peer\'s own state', cb => { seen.on('change', cb); return () => seen.off('change', cb) }, () => seen.getStates().has(4242))
    expect(seen.getStates().get(honestId)).toMatchObject({ name: 'honest' })
  })
})

describe('a listener with no token keys', () => {
  it('must be asked for with open: true, and warns', async () => {
    const r = replica([])
    await expect(listenForPeers(r)).rejects.toThrow(/auth keys .* or open: true/)
    await expect(listenForPeers(r, { auth: ['a-listener-secret-16+'], open: true })).rejects.toThrow(/exclude each other/)
    const log = captureLog('warn')
    await listening(r, { logger: log.logger })
    expect(log.entries.map(entry => entry.msg)).toEqual([expect.stringMatching(/^listening for peers with no auth keys: any peer .* under its own token$/)])
  })
})
