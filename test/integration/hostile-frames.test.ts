/**
 * Hostile input against a running relay: each bad frame closes only its own connection,
 * with a reason; the relay stays up, the stored document is unchanged, and other clients
 * keep syncing.
 */
import { randomUUID } from 'node:crypto'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import * as Y from 'yjs'
import { parseDocId } from '../../shared/wire/doc-id.js'
import { NATIVE_PROTOCOL_VERSION, NATIVE_SUBPROTOCOL, decodeNativeMessage, encodeNativeMessage, type NativeMessage } from '../../shared/wire/native-messages.js'
import * as encoding from 'lib0/encoding'
import { encodeAwarenessMessage, encodeSyncUpdate } from '../../shared/wire/y-messages.js'
import { SqliteStore } from '../../shared/storage/sqlite-store.js'
import { startRelay, type Relay } from '../../server/relay.js'
import { once } from '../helpers/events.js'
import { captureLog } from '../helpers/log-capture.js'
import { prng, testSeed } from '../helpers/prng.js'
import { stockClient, type StockClient } from '../helpers/stock-client.js'
import { tempDir } from '../helpers/temp.js'

const DOC = 'target'
const MAX_FRAME = 64 * 1024
let relay: Relay
let store: SqliteStore
let alice: StockClient
let bob: StockClient

beforeAll(async () => {
  store = new SqliteStore(join(tempDir(), 'relay.db'))
  relay = await startRelay({ port: 0, store, limits: { maxFrameBytes: MAX_FRAME }, logger: captureLog('warn').logger })
  alice = stockClient(relay.url, DOC)
  bob = stockClient(relay.url, DOC)
  await Promise.all([alice.synced(), bob.synced()])
  alice.text.insert(0, 'precious')
  await bob.textIs('precious')
})
afterAll(async () => {
  alice.destroy()
  bob.destroy()
  await relay.close()
})

const stored = async (): Promise<string> => JSON.stringify(await store.load(parseDocId(DOC)))

/** Sends `frame` on a fresh connection to the document; resolves with the close code and reason. */
async function sendHostile (frame: Uint8Array | string): Promise<{ code: number, reason: string }> {
  const ws = new WebSocket(`${relay.url}/${DOC}`)
  ws.on('error', () => {})
  await once(ws, 'open')
  ws.send(frame)
  const [code, reason] = await once<[number, Buffer]>(ws, 'close')
  return { code, reason: reason.toString() }
}

/** Checks that the two honest clients still sync through the relay. */
async function honestClientsStillSync (marker: string): Promise<void> {
  alice.text.insert(alice.text.length, marker)
  await bob.textIs(alice.text.toString())
}

function malformedUpdate (): Uint8Array {
  const doc = new Y.Doc()
  doc.getText('t').insert(0, 'evil')
  const update = Y.encodeStateAsUpdate(doc)
  return encodeSyncUpdate(update.slice(0, update.length - 2))
}

/** Presence whose state nests 1,000 arrays: y-protocols clients re-encode states with JSON.stringify, which recurses. */
function deepAwareness (): Uint8Array {
  const json = '['.repeat(1000) + ']'.repeat(1000)
  return encodeAwarenessMessage(encoding.encode(encoder => {
    encoding.writeVarUint(encoder, 1)
    encoding.writeVarUint(encoder, 77)
    encoding.writeVarUint(encoder, 1)
    encoding.writeVarString(encoder, json)
  }))
}

describe('hostile frames', () => {
  it.each<[string, Uint8Array | string, number, RegExp]>([
    ['a text frame', 'hello', 1003, /text frames/],
    ['an unknown message type', new Uint8Array([42]), 4400, /unknown message type/],
    ['a truncated varint', new Uint8Array([0, 0x80, 0x80]), 4400, /varint/],
    ['a length past the end', new Uint8Array([0, 2, 100, 1, 2, 3]), 4400, /past the end/],
    ['a malformed update', malformedUpdate(), 4400, /malformed Yjs update/],
    ['a malformed state vector', new Uint8Array([0, 0, 3, 5, 1, 1]), 4400, /state vector/],
    ['a malformed awareness update', new Uint8Array([1, 3, 1, 1, 1]), 4400, /./],
    ['an awareness state nested too deep', deepAwareness(), 4400, /nests arrays and objects more than 256 deep/],
    // ws closes with the standard 1009 (message too big) and no reason text.
    ['an oversize frame', new Uint8Array(MAX_FRAME + 1), 1009, /^$/]
  ])('closes the connection on %s, keeps the stored state and the other clients', async (_name, frame, code, reason) => {
    const before = await stored()
    const closed = await sendHostile(frame)
    expect(closed.code).toBe(code)
    expect(closed.reason).toMatch(reason)
    expect(await stored()).toBe(before)
    expect(bob.text.toString()).toContain('precious')
    await honestClientsStillSync('.')
  })

  it('refuses the document of a malformed update on a native connection before closing it (4400)', async () => {
    const before = await stored()
    const ws = new WebSocket(relay.url, NATIVE_SUBPROTOCOL)
    ws.on('error', () => {})
    const received: NativeMessage[] = []
    ws.on('message', (data: Buffer) => received.push(decodeNativeMessage(new Uint8Array(data))))
    await once(ws, 'open')
    const docId = parseDocId(DOC)
    ws.send(encodeNativeMessage({ type: 'hello', version: NATIVE_PROTOCOL_VERSION, peer: { peerId: randomUUID(), isRelay: false }, token: '' }))
    ws.send(encodeNativeMessage({ type: 'open', docId, stateVector: new Uint8Array([0]) }))
    const evil = new Y.Doc()
    evil.getText('t').insert(0, 'evil')
    const update = Y.encodeStateAsUpdate(evil)
    ws.send(encodeNativeMessage({ type: 'update', docId, seq: 1, update: update.slice(0, update.length - 2) }))
    const [code, reason] = await once<[number, Buffer]>(ws, 'close')
    expect({ code, reason: reason.toString() }).toEqual({ code: 4400, reason: expect.stringMatching(/malformed Yjs update/) })
    expect(received.at(-1)).toEqual({ type: 'doc-error', docId, code: 4400, reason: expect.stringMatching(/malformed Yjs update/) })
    expect(await stored()).toBe(before)
    await honestClientsStillSync(';')
  })

  it('closes a client that sends tombstones, which only relays of a cluster send each other (4400), deleting nothing', async () => {
    const before = await stored()
    const ws = new WebSocket(relay.url, NATIVE_SUBPROTOCOL)
    ws.on('error', () => {})
    await once(ws, 'open')
    ws.send(encodeNativeMessage({ type: 'hello', version: NATIVE_PROTOCOL_VERSION, peer: { peerId: randomUUID(), isRelay: false }, token: '' }))
    ws.send(encodeNativeMessage({ type: 'tombstones', last: true, entries: [{ docId: parseDocId(DOC), deletedAt: Date.now() }] }))
    const [code, reason] = await once<[number, Buffer]>(ws, 'close')
    expect({ code, reason: reason.toString() }).toEqual({ code: 4400, reason: 'unexpected tombstones message' })
    expect(await stored()).toBe(before)
    await honestClientsStillSync('!')
  })

  it('survives random frames (seeded) with the stored state intact', async () => {
    const seed = testSeed()
    const random = prng(seed)
    try {
      const before = await stored()
      for (let i = 0; i < 200; i++) {
        const frame = random.bytes(1 + random.int(64))
        // Keep to malformed-sync and unknown shapes: a random but valid update would be a legitimate write.
        frame[0] = [0, 1, 2, 4, 200][random.int(5)]!
        if (frame[0] === 0) frame[1] = random.int(3)
        const ws = new WebSocket(`${relay.url}/${DOC}`)
        ws.on('error', () => {})
        await once(ws, 'open')
        ws.send(frame)
        ws.close()
        await once(ws, 'close')
      }
      expect(await stored()).toBe(before)
      await honestClientsStillSync('!')
      const health = await fetch(relay.url.replace('ws:', 'http:') + '/healthz')
      expect(health.status).toBe(200)
    } catch (error) {
      console.error(`hostile-frames random test failed with SEED=${seed}`)
      throw error
    }
  })
})
