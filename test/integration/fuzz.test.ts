/**
 * Seeded frame fuzzer: 100,000 hostile frames (truncated, bit-flipped, huge varints,
 * run-length bombs, invalid UTF-8 ids, random message types) against a running relay,
 * through both protocols. The relay must not crash or hang, memory stays bounded, stored
 * documents are unchanged, and honest clients keep syncing throughout.
 * Frames are fed through in-memory links into the relay's own connection handlers (a real
 * socket per frame would make the run minutes long); a sample also goes over real sockets.
 *
 * Then crafted updates: well-formed Yjs updates of the shapes Yjs mishandles (sections in
 * ascending client order, a client in two sections, empty sections, items referring to
 * their own or later ids, parents that are not types, origins and right origins in
 * different lists, bad delete sets, many clients), mixed with honest edits and updates
 * that wait for others. Each must get the expected answer (stored, or refused with its
 * code); what the relay stores must load in a fresh Y.Doc, and fresh clients, also after
 * a restart, must agree with the clients that were live throughout.
 */
import { randomUUID } from 'node:crypto'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import * as encoding from 'lib0/encoding'
import * as Y from 'yjs'
import { parseDocId, type DocId } from '../../shared/wire/doc-id.js'
import { linkPair, type Link } from '../../shared/transport/link.js'
import { NATIVE_PROTOCOL_VERSION, decodeNativeMessage, encodeNativeMessage } from '../../shared/wire/native-messages.js'
import { encodeAwarenessEntries } from '../../shared/wire/awareness.js'
import { validateUpdate } from '../../shared/validation/update-validation.js'
import { decodeYMessage, encodeAwarenessMessage, encodeQueryAwareness, encodeSyncStep1, encodeSyncStep2, encodeSyncUpdate } from '../../shared/wire/y-messages.js'
import { SqliteStore } from '../../shared/storage/sqlite-store.js'
import { DEFAULT_LIMITS } from '../../shared/listen/limits.js'
import { serveNativeLink } from '../../server/connections/native-connection.js'
import { startRelay, type Relay } from '../../server/relay.js'
import { acceptStock } from '../../shared/listen/stock-accept.js'
import { OPEN_GRANT } from '../../shared/listen/auth.js'
import { PeerIds } from '../../shared/listen/peer-ids.js'
import { craftUpdate, type CraftedSection } from '../helpers/crafted-updates.js'
import { Crafter, type Expected } from '../helpers/crafter.js'
import { sendUpdates } from '../helpers/update-sender.js'
import { once, until } from '../helpers/events.js'
import { captureLog } from '../helpers/log-capture.js'
import { prng, testSeed } from '../helpers/prng.js'
import { stockClient, type StockClient } from '../helpers/stock-client.js'
import { tempDir } from '../helpers/temp.js'

const FRAMES = 100_000
const DOCS = ['fuzz/a', 'fuzz/b'].map(parseDocId)
let relay: Relay
let store: SqliteStore
const log = captureLog('fatal')
const honest: StockClient[] = []

beforeAll(async () => {
  store = new SqliteStore(join(tempDir(), 'relay.db'))
  relay = await startRelay({ port: 0, store, logger: log.logger })
  for (const docId of DOCS) {
    const writer = stockClient(relay.url, docId)
    const reader = stockClient(relay.url, docId)
    await Promise.all([writer.synced(), reader.synced()])
    writer.text.insert(0, `content of ${docId}`)
    await reader.textIs(`content of ${docId}`)
    honest.push(writer, reader)
  }
})
afterAll(async () => {
  for (const client of honest) client.destroy()
  await relay.close()
})

type Random = ReturnType<typeof prng>

function sampleUpdate (random: Random): Uint8Array {
  const doc = new Y.Doc()
  doc.getText('t').insert(0, 'x'.repeat(1 + random.int(20)))
  doc.getMap('m').set('k', random.int(1000))
  if (random.next() < 0.5) doc.getText('t').delete(0, 1)
  return Y.encodeStateAsUpdate(doc)
}

/** A well-formed frame of either protocol, as a starting point for mutations. */
function validFrame (random: Random, native: boolean): Uint8Array {
  const docId = DOCS[random.int(DOCS.length)]!
  const update = sampleUpdate(random)
  const awareness = encodeAwarenessEntries([{ clientId: random.int(1e6), clock: 1, state: { n: random.int(10) } }])
  if (native) {
    const messages = [
      encodeNativeMessage({ type: 'open', docId, stateVector: Y.encodeStateVectorFromUpdate(update) }),
      encodeNativeMessage({ type: 'update', docId, seq: random.int(100), update }),
      encodeNativeMessage({ type: 'awareness', docId, update: awareness }),
      encodeNativeMessage({ type: 'auth', token: 'x' }),
      encodeNativeMessage({ type: 'close', docId })
    ]
    return messages[random.int(messages.length)]!
  }
  const messages = [encodeSyncStep1(Y.encodeStateVectorFromUpdate(update)), encodeSyncStep2(update), encodeSyncUpdate(update), encodeAwarenessMessage(awareness), encodeQueryAwareness()]
  return messages[random.int(messages.length)]!
}

const huge = (): number[] => [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]

/** One hostile frame. */
function hostileFrame (random: Random, native: boolean): Uint8Array {
  const base = validFrame(random, native)
  switch (random.int(7)) {
    case 0: // truncated
      return base.slice(0, random.int(base.length))
    case 1: { // bit flips
      const frame = base.slice()
      for (let i = 1 + random.int(4); i > 0; i--) frame[random.int(frame.length)]! ^= 1 << random.int(8)
      return frame
    }
    case 2: // a huge varint where a length or count goes
      return new Uint8Array([...base.slice(0, 1 + random.int(Math.min(4, base.length))), ...huge(), ...random.bytes(random.int(8))])
    case 3: // run-length bombs: counts that promise millions of entries in a few bytes
      return encoding.encode(encoder => {
        if (native) {
          encoding.writeVarUint(encoder, 4)
          encoding.writeVarString(encoder, DOCS[0]!)
          encoding.writeVarUint(encoder, 1)
          encoding.writeVarUint(encoder, 8)
        } else {
          encoding.writeVarUint(encoder, random.int(2))
          if (random.next() < 0.5) encoding.writeVarUint(encoder, 2)
          encoding.writeVarUint(encoder, 8)
        }
        encoding.writeVarUint(encoder, 1 + random.int(3))
        encoding.writeVarUint(encoder, 2 ** 30 + random.int(1000))
        encoding.writeVarUint(encoder, random.int(1000))
        encoding.writeVarUint(encoder, 0)
      })
    case 4: { // invalid UTF-8 in a document id
      const frame = encodeNativeMessage({ type: 'open', docId: DOCS[0]!, stateVector: new Uint8Array([0]) })
      frame[2 + random.int(3)] = 0xc0 | random.int(2)
      return frame
    }
    case 5: // unknown message types
      return new Uint8Array([12 + random.int(240), ...random.bytes(random.int(16))])
    default: // random bytes
      return random.bytes(random.int(64))
  }
}

/**
 * Whether a frame would be a legitimate write (it decodes into a valid update): such a
 * frame may change a document, so it is never sent.
 */
function isValidWrite (frame: Uint8Array, native: boolean): boolean {
  try {
    const message = native ? decodeNativeMessage(frame) : decodeYMessage(frame)
    if (message.type !== 'sync-step2' && message.type !== 'sync-update' && message.type !== 'update') return false
    validateUpdate(message.update)
    return true
  } catch {
    return false
  }
}

const snapshot = async (): Promise<string> => JSON.stringify(await Promise.all(DOCS.map(docId => store.load(docId))))

describe('frame fuzzer', () => {
  it(`survives ${FRAMES} hostile frames with stored documents unchanged and honest clients syncing`, async () => {
    const seed = testSeed()
    const random = prng(seed)
    try {
      const before = await snapshot()
      global.gc?.()
      const heapBefore = process.memoryUsage().heapUsed
      let link: Link | null = null
      let native = false
      const peerIds = new PeerIds()
      const fresh = (): Link => {
        const [client, server] = linkPair()
        native = random.next() < 0.3
        if (native) {
          serveNativeLink(server, { registry: relay.registry, logger: log.logger, self: { peerId: 'fuzz', isRelay: true }, authenticator: null, maxDocs: DEFAULT_LIMITS.maxDocsPerConnection, peerIds })
          client.send(encodeNativeMessage({ type: 'hello', version: NATIVE_PROTOCOL_VERSION, peer: { peerId: randomUUID(), isRelay: false }, token: '' }))
        } else {
          const docId = DOCS[random.int(DOCS.length)]! as DocId
          acceptStock(server, { docId, grant: OPEN_GRANT, query: '' }, { documents: relay.registry, authenticator: null, logger: log.logger })
        }
        client.onClose = () => { link = null }
        return client
      }
      for (let i = 0; i < FRAMES; i++) {
        link ??= fresh()
        let frame = hostileFrame(random, native)
        while (isValidWrite(frame, native)) frame = hostileFrame(random, native)
        link.send(frame)
        if (i % 200 === 0) await new Promise(resolve => setImmediate(resolve))
      }
      await new Promise(resolve => setImmediate(resolve))

      // A sample over real sockets too.
      for (let i = 0; i < 200; i++) {
        const ws = new WebSocket(`${relay.url}/${DOCS[i % 2]}`)
        ws.on('error', () => {})
        await once(ws, 'open')
        let frame = hostileFrame(random, false)
        while (isValidWrite(frame, false)) frame = hostileFrame(random, false)
        ws.send(frame)
        ws.close()
        await once(ws, 'close')
      }

      global.gc?.()
      const heapGrowth = process.memoryUsage().heapUsed - heapBefore
      expect(heapGrowth).toBeLessThan(256 * 1024 * 1024)
      for (const [i, client] of honest.entries()) {
        if (i % 2 === 1) continue
        client.text.insert(0, '.')
        await honest[i + 1]!.textIs(client.text.toString())
      }
      expect(relay.health().status).toBe('ok')
      // Only the honest edits above changed the documents: compare without them.
      const after = JSON.parse(await snapshot()) as Array<{ snapshot: unknown, updates: unknown[] }>
      const expected = JSON.parse(before) as Array<{ snapshot: unknown, updates: unknown[] }>
      for (const [i, doc] of after.entries()) {
        expect(doc.snapshot).toEqual(expected[i]!.snapshot)
        expect(doc.updates.slice(0, expected[i]!.updates.length)).toEqual(expected[i]!.updates)
        expect(doc.updates.length - expected[i]!.updates.length).toBeLessThanOrEqual(1)
      }
    } catch (error) {
      console.error(`fuzz test failed with SEED=${seed}`)
      throw error
    }
  }, 120_000)
})

/** What the relay must answer to a crafted update. */
/** The answer of `target` to `update`: 'stored', or the close code. */
async function answerTo (target: Relay, docId: string, update: Uint8Array): Promise<Expected | number> {
  const answer = await sendUpdates(target.url, docId, [update])
  return answer === 'stored' ? answer : answer.code
}

/** What a user sees of a document, and its state vector, as one string (map keys sorted: their order depends on the order of integration). */
const seenIn = (doc: Y.Doc): string => JSON.stringify({
  t: doc.getText('t').toString(),
  u: doc.getText('u').toString(),
  m: Object.entries(doc.getMap('m').toJSON()).sort(([a], [b]) => a < b ? -1 : 1),
  vector: [...Y.decodeStateVector(Y.encodeStateVector(doc))].sort(([a], [b]) => a - b)
})

describe('crafted update fuzzer', () => {
  it('answers each crafted shape as it must; what is stored loads, and fresh clients agree with live ones', async () => {
    const seed = testSeed()
    const random = prng(seed)
    const path = join(tempDir(), 'crafted.db')
    const docId = 'fuzz/crafted'
    let store = new SqliteStore(path)
    let target = await startRelay({ port: 0, store, compactMinBytes: 2048, logger: log.logger })
    const live = [stockClient(target.url, docId), stockClient(target.url, docId)]
    const fresh: StockClient[] = []
    try {
      await Promise.all(live.map(client => client.synced()))
      const mirror = new Y.Doc()
      const crafter = new Crafter(random, mirror)
      const answers = new Map<string, number>()
      for (let i = 0; i < 300; i++) {
        const { kind, update, expected } = crafter.next()
        const answer = await answerTo(target, docId, update)
        expect(answer, `seed ${seed}, update ${i} (${kind})`).toBe(expected)
        answers.set(kind, (answers.get(kind) ?? 0) + 1)
        if (answer === 'stored') Y.applyUpdate(mirror, update)
      }
      expect(answers.size, `seed ${seed}: kinds crafted ${[...answers.keys()].join(', ')}`).toBeGreaterThanOrEqual(10)
      // A last honest edit: once live clients have it, they have everything before it.
      live[0]!.text.insert(0, '!')
      Y.applyUpdate(mirror, Y.encodeStateAsUpdate(live[0]!.doc, Y.encodeStateVector(mirror)))
      const expected = seenIn(mirror)
      const agrees = (client: StockClient): Promise<void> => until(`a client to see what the relay stored (seed ${seed})`, cb => {
        client.doc.on('update', cb)
        return () => client.doc.off('update', cb)
      }, () => seenIn(client.doc) === expected)
      await Promise.all(live.map(agrees))
      // What is stored loads in a fresh Y.Doc.
      const stored = (await store.load(parseDocId(docId)))!
      const loaded = new Y.Doc()
      for (const part of [...(stored.snapshot === null ? [] : [stored.snapshot]), ...stored.updates]) Y.applyUpdate(loaded, part)
      expect(seenIn(loaded), `seed ${seed}`).toBe(expected)
      fresh.push(stockClient(target.url, docId))
      await agrees(fresh[0]!)
      await target.close()
      store = new SqliteStore(path)
      target = await startRelay({ port: 0, store, logger: log.logger })
      fresh.push(stockClient(target.url, docId))
      await agrees(fresh[1]!)
    } catch (error) {
      console.error(`crafted update fuzz test failed with SEED=${seed}`)
      throw error
    } finally {
      for (const client of [...live, ...fresh]) client.destroy()
      await target.close()
    }
  }, 60_000)

  it('stores updates of many clients up to the limit, and refuses (1008) those beyond it', async () => {
    const seed = testSeed()
    const random = prng(seed)
    const limit = 1000
    const target = await startRelay({ port: 0, store: new SqliteStore(join(tempDir(), 'clients.db')), limits: { maxClientsPerDocument: limit }, logger: log.logger })
    try {
      let clients = 0
      let next = 1
      for (let i = 0; i < 30; i++) {
        const count = 1 + random.int(120)
        const sections: CraftedSection[] = Array.from({ length: count }, (_, j) => ({ client: next + count - 1 - j, clock: 0, structs: [random.next() < 0.5 ? { gc: 1 } : { parent: 't', text: 'c' }] }))
        const expected = clients + count > limit ? 1008 : 'stored'
        expect(await answerTo(target, 'fuzz/clients', craftUpdate(sections)), `seed ${seed}, update ${i}`).toBe(expected)
        if (expected === 'stored') {
          clients += count
          next += count
        }
      }
      expect(clients).toBeGreaterThan(limit / 2)
    } catch (error) {
      console.error(`crafted clients fuzz test failed with SEED=${seed}`)
      throw error
    } finally {
      await target.close()
    }
  }, 60_000)
})
