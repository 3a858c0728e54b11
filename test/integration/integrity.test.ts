/**
 * Updates that decode but that Yjs integrates or merges differently on different
 * replicas, and stored data and client counts that broke the relay: one regression per
 * case, each against a relay with a real SQLite file, the attack sent over a real socket
 * as y-websocket frames, and stock clients (live ones, connected before the attack, and
 * fresh ones, after it and after a restart) that must all see the same document.
 */
import { EventEmitter } from 'node:events'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { parseDocId } from '../../shared/wire/doc-id.js'
import { SqliteStore } from '../../shared/storage/sqlite-store.js'
import type { Limits } from '../../shared/listen/limits.js'
import { startRelay, type Relay } from '../../server/relay.js'
import { craftUpdate, gcStructsOfClients } from '../helpers/crafted-updates.js'
import { startRelayProcess } from '../helpers/relay-process.js'
import { until } from '../helpers/events.js'
import { captureLog } from '../helpers/log-capture.js'
import { stockClient, type StockClient } from '../helpers/stock-client.js'
import { sendUpdates, type Answer } from '../helpers/update-sender.js'
import { tempDir } from '../helpers/temp.js'

const root = tempDir()
const DOC = 'notes/integrity'
let n = 0
const running: Array<{ relay: Relay }> = []
const clients: StockClient[] = []
afterEach(async () => {
  for (const client of clients.splice(0)) client.destroy()
  for (const { relay } of running.splice(0)) await relay.close()
})

interface TestRelay {
  relay: Relay
  store: SqliteStore
  path: string
  /** Compactions committed so far. */
  compactions(): number
  /** Updates committed so far. */
  committed(): number
  /** Resolves once `check` holds after some commit. */
  afterCommit(what: string, check: () => boolean): Promise<void>
}

async function relayAt (path: string, limits: Partial<Limits> = {}): Promise<TestRelay> {
  const commits = new EventEmitter()
  let compactions = 0
  let committed = 0
  const store = new SqliteStore(path, {
    onCommit: info => {
      compactions += info.compactions
      committed += info.updates
      commits.emit('commit')
    }
  })
  const relay = await startRelay({ port: 0, store, limits, logger: captureLog('fatal').logger })
  running.push({ relay })
  return {
    relay,
    store,
    path,
    compactions: () => compactions,
    committed: () => committed,
    afterCommit: (what, check) => until(what, cb => { commits.on('commit', cb); return () => commits.off('commit', cb) }, check)
  }
}

const freshRelay = (limits: Partial<Limits> = {}): Promise<TestRelay> => relayAt(join(root, `relay-${n++}.db`), limits)

/** Restarts `at` on its database file. */
async function restart (at: TestRelay): Promise<TestRelay> {
  running.splice(running.findIndex(entry => entry.relay === at.relay), 1)
  await at.relay.close()
  return relayAt(at.path)
}

function client (relay: Relay): StockClient {
  const created = stockClient(relay.url, DOC)
  clients.push(created)
  return created
}

/** Sends `updates` to the test document of the relay at `url`; see `sendUpdates`. */
const send = (url: string, ...updates: Uint8Array[]): Promise<Answer> => sendUpdates(url, DOC, updates, 30_000)

/** The code with which the relay next closes `reader`'s connection. */
function nextClose (reader: StockClient): Promise<number> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('timed out waiting for the relay to close the connection')), 10_000)
    reader.provider.once('connection-close', event => {
      clearTimeout(timer)
      resolve(event?.code ?? 0)
    })
  })
}

/** A fresh stock client's text once it has synced. */
async function freshText (relay: Relay): Promise<string> {
  const fresh = client(relay)
  await fresh.synced()
  return fresh.text.toString()
}

describe('sections in ascending client order (case 1)', () => {
  it('are normalised: after compaction, a fresh client sees every section', async () => {
    const at = await freshRelay()
    // Three sections, clients 100, 200, 300 in that order (Yjs writes descending order).
    const ascending = craftUpdate([100, 200, 300].map((c, i) => ({ client: c, clock: 0, structs: [{ parent: 't', text: 'abc'[i]! }] })))
    const big = new Y.Doc()
    big.clientID = 5000
    big.getText('t').insert(0, 'z'.repeat(20_000))
    expect(await send(at.relay.url, ascending, Y.encodeStateAsUpdate(big))).toBe('stored')
    await at.afterCommit('a compaction', () => at.compactions() > 0)
    const expected = new Y.Doc()
    Y.applyUpdate(expected, ascending)
    Y.applyUpdate(expected, Y.encodeStateAsUpdate(big))
    const text = expected.getText('t').toString()
    expect(text.replace(/z+/, 'Z')).toBe('abcZ')
    expect((await freshText(at.relay)).replace(/z+/, 'Z')).toBe('abcZ')
    const restarted = await restart(at)
    expect(await freshText(restarted.relay)).toBe(text)
  })
})

describe('items referring to their own or a later id of their client (cases 2 and 4)', () => {
  it('are refused (4400): fresh and live clients agree, also after a restart', async () => {
    const at = await freshRelay()
    const live = client(at.relay)
    await live.synced()
    live.text.insert(0, 'precious')
    await at.afterCommit('the live edit', () => at.committed() >= 1)
    // 20 bytes: client 2^40, clock 0, an item whose origin is (2^40, 5).
    const selfReferencing = craftUpdate([{ client: 2 ** 40, clock: 0, structs: [{ origin: [2 ** 40, 5], text: 'x' }] }])
    expect(selfReferencing.length).toBe(20)
    expect(await send(at.relay.url, selfReferencing)).toEqual({ code: 4400, reason: expect.stringMatching(/own or a later id as its origin/) })
    expect(await freshText(at.relay)).toBe('precious')
    expect(live.text.toString()).toBe('precious')
    expect(await freshText((await restart(at)).relay)).toBe('precious')
  })

  it('are refused with a low client id too: deleted characters stay deleted', async () => {
    const at = await freshRelay()
    const live = client(at.relay)
    await live.synced()
    live.text.insert(0, 'hello')
    live.text.delete(0, 2)
    await at.afterCommit('the live edits', () => at.committed() >= 2)
    const lowClient = craftUpdate([{ client: 1, clock: 0, structs: [{ origin: [1, 5], text: 'x' }] }])
    expect(await send(at.relay.url, lowClient)).toMatchObject({ code: 4400 })
    expect(await freshText(at.relay)).toBe('llo')
  })

  it('with a deletion (14 bytes) do not stop compaction: later writes still compact the log', async () => {
    const at = await freshRelay()
    const writer = client(at.relay)
    await writer.synced()
    const attack = craftUpdate([{ client: 9, clock: 0, structs: [{ origin: [9, 5], text: 'x' }] }], [[9, [[0, 1]]]])
    expect(attack.length).toBe(14)
    expect(await send(at.relay.url, attack)).toMatchObject({ code: 4400 })
    // Something deleted, then more than the 16 KiB the log may hold uncompacted.
    writer.text.insert(0, 'abc')
    writer.text.delete(0, 1)
    for (let i = 0; i < 40; i++) writer.text.insert(writer.text.length, 'y'.repeat(1000))
    await at.afterCommit('the writes', () => at.committed() >= 42)
    expect(at.compactions()).toBeGreaterThan(0)
    expect(await freshText(at.relay)).toBe(writer.text.toString())
  })
})

describe('a client in two sections of one update (case 3)', () => {
  it('is refused (4400): live and fresh clients agree', async () => {
    const at = await freshRelay()
    const live = client(at.relay)
    await live.synced()
    const twice = craftUpdate([
      { client: 4242, clock: 0, structs: [{ parent: 't', text: 'AAAA' }] },
      { client: 4242, clock: 0, structs: [{ parent: 't', text: 'BBBB' }] }
    ])
    expect(await send(at.relay.url, twice)).toEqual({ code: 4400, reason: expect.stringMatching(/two sections for client 4242/) })
    live.text.insert(0, 'after')
    await at.afterCommit('the live edit', () => at.committed() >= 1)
    expect(await freshText(at.relay)).toBe(live.text.toString())
    expect(await freshText((await restart(at)).relay)).toBe('after')
  })
})

describe('a stored snapshot with a corrupt delete set (case 5)', () => {
  it('is refused at load (4503), its bytes left untouched', async () => {
    const path = join(root, `corrupt-${n++}.db`)
    const source = new Y.Doc()
    source.getText('t').insert(0, 'hello world')
    source.getText('t').delete(0, 6)
    const snapshot = Y.encodeStateAsUpdate(source)
    // Cut the last byte: the structs (and the state vector) still read, the delete set does not.
    const corrupt = snapshot.slice(0, snapshot.length - 1)
    expect(() => Y.encodeStateVectorFromUpdate(corrupt)).not.toThrow()
    expect(() => Y.decodeUpdate(corrupt)).toThrow()
    const seed = new SqliteStore(path)
    await seed.compact(parseDocId(DOC), corrupt)
    await seed.close()
    const at = await relayAt(path)
    const before = JSON.stringify(await at.store.load(parseDocId(DOC)))
    const reader = client(at.relay)
    expect(await nextClose(reader)).toBe(4503)
    expect(reader.provider.synced).toBe(false)
    expect(JSON.stringify(await at.store.load(parseDocId(DOC)))).toBe(before)
  })
})

describe('clients per document (case 6)', () => {
  it('are limited by maxClientsPerDocument (1008), updates within the limit still get in', async () => {
    const at = await freshRelay({ maxClientsPerDocument: 1000 })
    expect(await send(at.relay.url, gcStructsOfClients(1, 1001))).toEqual({ code: 1008, reason: expect.stringMatching(/more than 1000 clients/) })
    expect(await send(at.relay.url, gcStructsOfClients(1, 600))).toBe('stored')
    expect(await send(at.relay.url, gcStructsOfClients(601, 401))).toEqual({ code: 1008, reason: expect.stringMatching(/more than 1000 clients/) })
    expect(await send(at.relay.url, gcStructsOfClients(601, 400))).toBe('stored')
    await at.afterCommit('the accepted updates', () => at.committed() >= 2)
    expect((await at.store.load(parseDocId(DOC)))!.updates).toHaveLength(2)
  })

  it('bound the memory of a 15 MB frame of 1.9 million clients: refused at once', async () => {
    const at = await freshRelay()
    const frame = gcStructsOfClients(2 ** 21, 1_900_000)
    expect(frame.length).toBeGreaterThan(15_000_000)
    global.gc?.()
    const heapBefore = process.memoryUsage().heapUsed
    expect(await send(at.relay.url, frame)).toMatchObject({ code: 1008 })
    global.gc?.()
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(128 * 1024 * 1024)
    expect(await at.store.load(parseDocId(DOC))).toBeNull()
  })

  it('are limited by the --max-clients-per-document flag of the command line', async () => {
    const child = await startRelayProcess(join(root, `cli-${n++}`), ['--max-clients-per-document', '5'])
    try {
      expect(await send(child.url, gcStructsOfClients(1, 6))).toEqual({ code: 1008, reason: expect.stringMatching(/more than 5 clients/) })
      expect(await send(child.url, gcStructsOfClients(1, 5))).toBe('stored')
    } finally {
      await child.stop()
    }
  })

  it('refuses to load a stored document with more clients than the limit (4503)', async () => {
    const path = join(root, `many-${n++}.db`)
    const seed = new SqliteStore(path)
    await seed.append(parseDocId(DOC), gcStructsOfClients(1, 50))
    await seed.close()
    const at = await relayAt(path, { maxClientsPerDocument: 10 })
    expect(await nextClose(client(at.relay))).toBe(4503)
  })
})
