/**
 * Authorization matrix against a relay with token authentication: stock and native
 * clients, bad tokens of every kind, document scopes and prefix boundaries, read-only
 * access, expiry, refresh and awareness ownership. Every refusal leaves the stored state
 * unchanged.
 */
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import * as Y from 'yjs'
import { Replica } from '../../client/replica.js'
import { SqliteStore } from '../../client/node.js'
import { connectWebSocket, type WebSocketConstructor } from '../../shared/transport/websocket.js'
import { parseDocId } from '../../shared/wire/doc-id.js'
import { NATIVE_PROTOCOL_VERSION, encodeNativeMessage, type NativeMessage } from '../../shared/wire/native-messages.js'
import { encodeAwarenessMessage, encodeSyncStep2, encodeSyncUpdate } from '../../shared/wire/y-messages.js'
import { encodeAwarenessEntries } from '../../shared/wire/awareness.js'
import { startRelay, type Relay } from '../../server/relay.js'
import { once, until } from '../helpers/events.js'
import { captureLog } from '../helpers/log-capture.js'
import { stockClient } from '../helpers/stock-client.js'
import { tempDir } from '../helpers/temp.js'
import { signToken } from '../helpers/tokens.js'
import { nativeClient, type NativeClient } from '../helpers/native-client.js'

const SECRET = 'default-secret-0123456789'
const ROTATED = 'rotated-secret-9876543210'
const root = tempDir()
let relay: Relay
let store: SqliteStore

beforeAll(async () => {
  store = new SqliteStore(join(root, 'relay.db'))
  relay = await startRelay({ port: 0, store, authKeys: new Map([['', SECRET], ['k2', ROTATED]]), logger: captureLog('warn').logger })
  // Seed a document as a writer.
  const writer = stockClient(relay.url, 'notes/1', { params: { token: await signToken(SECRET, { write: ['notes/*'] }) } })
  await writer.synced()
  writer.text.insert(0, 'seeded')
  const reader = stockClient(relay.url, 'notes/1', { params: { token: await signToken(SECRET, { read: ['notes/1'] }) } })
  await reader.textIs('seeded')
  writer.destroy()
  reader.destroy()
})
afterAll(() => relay.close())

const stored = async (docId: string): Promise<string> => JSON.stringify(await store.load(parseDocId(docId)))

/** Opens a raw stock connection; resolves with its close code and reason. */
async function stockClose (docId: string, token: string | null, send?: Uint8Array): Promise<{ code: number, reason: string }> {
  const ws = new WebSocket(`${relay.url}/${docId}${token === null ? '' : `?token=${encodeURIComponent(token)}`}`)
  ws.on('error', () => {})
  if (send !== undefined) ws.on('open', () => ws.send(send))
  const [code, reason] = await once<[number, Buffer]>(ws, 'close')
  return { code, reason: reason.toString() }
}

/** A raw native connection to the relay: hello with `token`, then the messages. */
const native = (token: string, messages: NativeMessage[] = []): Promise<NativeClient> => nativeClient(relay.url, { token, messages })

const sv = Y.encodeStateVector(new Y.Doc())
function textUpdate (text: string): Uint8Array {
  const doc = new Y.Doc()
  doc.getText('t').insert(0, text)
  return Y.encodeStateAsUpdate(doc)
}

describe('authentication', () => {
  const tampered = async (): Promise<string> => {
    const token = await signToken(SECRET, { write: ['*'] })
    const [header, payload, signature] = token.split('.')
    return `${header}.${payload}.${signature!.slice(0, -2)}${signature!.endsWith('AA') ? 'BB' : 'AA'}`
  }
  const cases: Array<[string, () => Promise<string | null>, RegExp]> = [
    ['no token', async () => null, /token is required/],
    ['an expired token', () => signToken(SECRET, { read: ['*'], expiresIn: -10 }), /expired/],
    ['a tampered signature', tampered, /invalid token/],
    ['a token signed with another secret', () => signToken('some-other-secret-123456', { read: ['*'] }), /invalid token/],
    ['an unknown kid', () => signToken(SECRET, { read: ['*'], kid: 'nope' }), /unknown key id/],
    ['garbage', async () => 'not.a.jwt', /invalid token/]
  ]

  it.each(cases)('closes a stock client with %s (4401)', async (_name, token, reason) => {
    const before = await stored('notes/1')
    const closed = await stockClose('notes/1', await token(), encodeSyncUpdate(textUpdate('evil')))
    expect(closed.code).toBe(4401)
    expect(closed.reason).toMatch(reason)
    expect(await stored('notes/1')).toBe(before)
  })

  it.each(cases)('closes a native client with %s (4401)', async (_name, token, reason) => {
    const before = await stored('notes/1')
    const connection = await native(await token() ?? '', [
      { type: 'open', docId: parseDocId('notes/1'), stateVector: sv },
      { type: 'update', docId: parseDocId('notes/1'), seq: 1, update: textUpdate('evil') }
    ])
    const closed = await connection.closed
    expect(closed.code).toBe(4401)
    expect(closed.reason).toMatch(reason)
    expect(connection.received).toEqual([])
    expect(await stored('notes/1')).toBe(before)
  })

  it('accepts a token signed with a rotated key selected by kid', async () => {
    const client = stockClient(relay.url, 'notes/1', { params: { token: await signToken(ROTATED, { read: ['notes/1'], kid: 'k2' }) } })
    await client.textIs('seeded')
    client.destroy()
  })
})

describe('authorization', () => {
  it('refuses documents outside the token, with prefix boundaries (4403)', async () => {
    const token = await signToken(SECRET, { write: ['notes/*'] })
    expect((await stockClose('notesX', token)).code).toBe(4403)
    expect((await stockClose('other/1', token)).code).toBe(4403)
    const inside = stockClient(relay.url, 'notes/deep/er', { params: { token } })
    await inside.synced()
    inside.destroy()

    const connection = await native(token, [
      { type: 'open', docId: parseDocId('notesX'), stateVector: sv },
      { type: 'open', docId: parseDocId('notes/1'), stateVector: sv }
    ])
    await connection.until('answers', received => received.length >= 3)
    expect(connection.received[0]).toMatchObject({ type: 'welcome' })
    expect(connection.received).toContainEqual(expect.objectContaining({ type: 'doc-error', docId: 'notesX', code: 4403 }))
    expect(connection.received).toContainEqual(expect.objectContaining({ type: 'sync', docId: 'notes/1' }))
    connection.close()
  })

  it('closes a read-only stock client that sends an update or a step 2, storing nothing', async () => {
    const token = await signToken(SECRET, { read: ['notes/*'] })
    const before = await stored('notes/1')
    for (const frame of [encodeSyncUpdate(textUpdate('evil')), encodeSyncStep2(textUpdate('evil'))]) {
      const closed = await stockClose('notes/1', token, frame)
      expect(closed.code).toBe(4403)
      expect(closed.reason).toMatch(/read-only/)
    }
    // A stock provider with a read-only token reads, and is cut off when it edits.
    const reader = stockClient(relay.url, 'notes/1', { params: { token } })
    await reader.textIs('seeded')
    const closed = new Promise<number>(resolve => reader.provider.on('connection-close', event => resolve((event as { code: number }).code)))
    reader.text.insert(0, 'evil ')
    expect(await closed).toBe(4403)
    reader.destroy()
    expect(await stored('notes/1')).toBe(before)
  })

  it('refuses updates from a read-only native replica, storing nothing', async () => {
    const before = await stored('notes/1')
    const replica = new Replica({ store: new SqliteStore(join(root, 'ro-replica.db')), relays: [relay.url], token: await signToken(SECRET, { read: ['notes/*'] }) })
    const doc = await replica.open('notes/1')
    await replica.doc('notes/1').synced()
    expect(doc.getText('t').toString()).toBe('seeded')
    const refused = new Promise<{ code: number, reason: string }>(resolve => replica.on('refused', resolve))
    doc.getText('t').insert(0, 'evil ')
    expect(await refused).toMatchObject({ code: 4403, reason: expect.stringMatching(/read-only/) })
    await expect(replica.doc('notes/1').synced()).rejects.toThrow(/read-only/)
    expect(replica.doc('notes/1').pending).toBe(1)
    await replica.close()
    expect(await stored('notes/1')).toBe(before)
  })

  it('ends the session when the token expires', async () => {
    const token = await signToken(SECRET, { read: ['notes/*'], expiresIn: 1 })
    const connection = await native(token)
    const closed = await connection.closed
    expect(closed).toEqual({ code: 4401, reason: 'token expired' })
  })

  it('lets a native client refresh its token without dropping its documents, and refuses what the new one does not allow', async () => {
    const connection = await native(await signToken(SECRET, { write: ['notes/*', 'todo/*'], expiresIn: 2 }), [
      { type: 'open', docId: parseDocId('notes/1'), stateVector: sv },
      { type: 'open', docId: parseDocId('todo/1'), stateVector: sv }
    ])
    await connection.until('both syncs', received => received.filter(m => m.type === 'sync').length === 2)
    connection.send({ type: 'auth', token: await signToken(SECRET, { write: ['notes/*'] }) })
    await connection.until('todo/1 refused', received => received.some(m => m.type === 'doc-error' && m.docId === 'todo/1'))
    // notes/1 is still open on the same connection: an update to it is acknowledged.
    connection.send({ type: 'update', docId: parseDocId('notes/1'), seq: 1, update: new Uint8Array([0, 0]) })
    await connection.until('the ack', received => received.some(m => m.type === 'ack'))
    connection.close()
  })
})

describe('awareness', () => {
  it('lets a connection change only the entries it introduced, and stamps the token subject', async () => {
    const ann = stockClient(relay.url, 'notes/room', { params: { token: await signToken(SECRET, { sub: 'ann', write: ['notes/*'] }) } })
    const bob = stockClient(relay.url, 'notes/room', { params: { token: await signToken(SECRET, { sub: 'bob', write: ['notes/*'] }) } })
    await Promise.all([ann.synced(), bob.synced()])
    ann.provider.awareness.setLocalStateField('name', 'Ann')
    const annId = ann.doc.clientID
    const seenByBob = (): Record<string, unknown> | undefined => bob.provider.awareness.getStates().get(annId) as Record<string, unknown> | undefined
    const changes = (cb: () => void): () => void => { bob.provider.awareness.on('change', cb); return () => bob.provider.awareness.off('change', cb) }
    await until('bob to see ann', changes, () => seenByBob()?.name === 'Ann')
    expect(seenByBob()?.sub).toBe('ann')

    // A hostile connection tries to overwrite and to remove Ann's entry.
    const mallory = new WebSocket(`${relay.url}/notes/room?token=${await signToken(SECRET, { sub: 'mallory', write: ['notes/*'] })}`)
    await once(mallory, 'open')
    mallory.send(encodeAwarenessMessage(encodeAwarenessEntries([{ clientId: annId, clock: 1000, state: { name: 'Mallory' } }])))
    mallory.send(encodeAwarenessMessage(encodeAwarenessEntries([{ clientId: annId, clock: 1001, state: null }])))
    mallory.send(encodeAwarenessMessage(encodeAwarenessEntries([{ clientId: 424242, clock: 1, state: { name: 'M', sub: 'ann' } }])))
    await until('mallory\'s own entry', changes, () => bob.provider.awareness.getStates().has(424242))
    expect(seenByBob()).toMatchObject({ name: 'Ann', sub: 'ann' })
    expect(bob.provider.awareness.getStates().get(424242)).toMatchObject({ sub: 'mallory' })
    mallory.close()
    ann.destroy()
    bob.destroy()
  })
})

describe('relay links', () => {
  it('refuses a relay link with the wrong cluster secret (4401)', async () => {
    const clustered = await startRelay({
      port: 0,
      dataDir: join(root, 'clustered'),
      cluster: { selfId: 'r2', members: [{ id: 'r1', url: 'ws://127.0.0.1:1' }, { id: 'r2', url: 'ws://127.0.0.1:2' }], secret: 'right-secret' },
      logger: captureLog('error').logger
    })
    try {
      const link = await connectWebSocket(clustered.url, WebSocket as unknown as WebSocketConstructor)
      const closed = new Promise<number>(resolve => { link.onClose = code => resolve(code) })
      link.send(encodeNativeMessage({ type: 'hello', version: NATIVE_PROTOCOL_VERSION, peer: { peerId: 'r1', isRelay: true }, token: 'wrong-secret' }))
      expect(await closed).toBe(4401)
    } finally {
      await clustered.close()
    }
  })
})

describe('hostile tokens', () => {
  it('survives a token whose unverified header would make a long multi-byte close reason', async () => {
    const header = Buffer.from(JSON.stringify({ alg: 'HS256', kid: 'a'.repeat(102) + 'é'.repeat(30) })).toString('base64url')
    const payload = Buffer.from(JSON.stringify({ sub: 'x' })).toString('base64url')
    const closed = await stockClose('notes/1', `${header}.${payload}.c2ln`)
    expect(closed.code).toBe(4401)
    const client = stockClient(relay.url, 'notes/1', { params: { token: await signToken(SECRET, { read: ['notes/1'] }) } })
    await client.textIs('seeded')
    client.destroy()
  })
})
