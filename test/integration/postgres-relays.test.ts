/**
 * Relays on one real PostgreSQL database, as child processes started from the CLI: stock
 * clients on different relays converge; kill -9 of each relay in turn under a native write
 * load loses no acknowledged write and fails over within the lease and a second; a relay
 * joins with no restart and serves; a paused relay drops its documents when it resumes;
 * PostgreSQL crashing and coming back loses no acknowledged write and acknowledgements resume.
 */
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { Replica } from '../../client/replica.js'
import { SqliteStore } from '../../client/node.js'
import { preferenceList } from '../../shared/placement.js'
import { until } from '../helpers/events.js'
import { prng, testSeed } from '../helpers/prng.js'
import { stockClient, type StockClient } from '../helpers/stock-client.js'
import { tempDir } from '../helpers/temp.js'
import { POSTGRES_MISSING, runPostgresTests, startPostgres, type TestPostgres } from '../helpers/postgres.js'
import { healthOf, inDatabase, startPostgresRelays, type PostgresRelays } from '../helpers/postgres-relays.js'

if (!runPostgresTests) console.warn(POSTGRES_MISSING)

const LEASE_MS = 1000
const root = tempDir()
let n = 0
const groups: PostgresRelays[] = []
const replicas: Replica[] = []
const stocks: StockClient[] = []

function replica (url: string): Replica {
  const r = new Replica({ store: new SqliteStore(join(root, `replica-${n++}`, 'local.db')), relays: [url], minReconnectDelayMs: 20, maxReconnectDelayMs: 200 })
  replicas.push(r)
  return r
}
function stock (url: string, docId: string): StockClient {
  const client = stockClient(url, docId)
  stocks.push(client)
  return client
}
/** The relay that serves `docId` when `ids` are live. */
const homeOf = (docId: string, ids: string[]): string => preferenceList(docId, ids.map(id => ({ id })))[0]!.id
/** Items of every document in the database. */
async function itemsInDatabase (url: string, docIds: string[]): Promise<Map<string, Set<string>>> {
  const docs = await inDatabase(url, docIds)
  return new Map([...docs].map(([docId, doc]) => [docId, new Set(doc.getArray<string>('items').toArray())]))
}

describe.runIf(runPostgresTests)('relays on one PostgreSQL database', () => {
  let server: TestPostgres
  beforeAll(async () => { server = await startPostgres() })
  afterEach(async () => {
    for (const client of stocks.splice(0)) client.destroy()
    await Promise.all(replicas.splice(0).map(r => r.close()))
    await Promise.all(groups.splice(0).map(g => g.stopAll()))
  })
  afterAll(async () => { await server?.destroy() })

  async function relays (ids: string[]): Promise<{ url: string, group: PostgresRelays }> {
    const url = await server.createDatabase()
    const group = await startPostgresRelays(url, ids, { leaseMs: LEASE_MS })
    groups.push(group)
    return { url, group }
  }

  it('serves stock clients on different relays the same live document', async () => {
    const { group } = await relays(['r1', 'r2', 'r3'])
    for (const relay of group.relays) expect((await healthOf(relay.url)).body.status).toBe('ok')
    const clients = group.relays.map(relay => stock(relay.url, 'shared/notes'))
    await Promise.all(clients.map(c => c.synced()))
    clients.forEach((client, i) => client.text.insert(0, `${i}`))
    await until('stock clients to converge', cb => {
      for (const client of clients) client.doc.on('update', cb)
      return () => { for (const client of clients) client.doc.off('update', cb) }
    }, () => clients.every(client => client.text.length === 3 && client.text.toString() === clients[0]!.text.toString()))
    // One relay serves the document; the others pass their clients through to it.
    const serving = await Promise.all(group.relays.map(async relay => (await healthOf(relay.url)).body.documents))
    expect(serving.filter(documents => documents > 0)).toEqual([1])
    expect(group.relays[serving.indexOf(1)]!.id).toBe(homeOf('shared/notes', ['r1', 'r2', 'r3']))
  })

  it('keeps one connection per replica to each relay it uses: the relay it started from serves as a member too', async () => {
    const { group } = await relays(['r1', 'r2', 'r3'])
    const ids = group.relays.map(relay => relay.id)
    // Four replicas, each with two documents that the relay it starts from serves.
    const docsAt = (id: string): string[] => Array.from({ length: 40 }, (_, i) => `own/${i}`).filter(docId => homeOf(docId, ids) === id).slice(0, 2)
    const started = Array.from({ length: 4 }, (_, i) => group.relays[i % 3]!)
    const opened = started.map(relay => ({ replica: replica(relay.url), docs: docsAt(relay.id) }))
    for (const { replica: r, docs } of opened) {
      for (const docId of docs) {
        r.doc(docId).ydoc.getText('t').insert(0, 'x')
        await r.doc(docId).durable()
      }
    }
    // Before, the replica's first connection and its connection to the same relay as a member were two sockets under one peer id.
    const clients = await Promise.all(group.relays.map(async relay => (await healthOf(relay.url)).body.clients))
    expect(clients.reduce((sum, count) => sum + count, 0)).toBe(4)
  })

  it('answers the HTTP document API at any relay: a write through one is read through another, listed once, and deleted for everyone', async () => {
    const { url, group } = await relays(['r1', 'r2', 'r3'])
    const docId = 'http/on-postgres'
    const home = homeOf(docId, ['r1', 'r2', 'r3'])
    const [writer, reader] = group.relays.filter(relay => relay.id !== home)
    const http = (relayUrl: string): string => relayUrl.replace('ws:', 'http:')
    const doc = new Y.Doc()
    doc.getText('t').insert(0, 'posted')
    expect((await fetch(`${http(writer!.url)}/v1/docs/${docId}`, { method: 'POST', body: new Uint8Array(Y.encodeStateAsUpdate(doc)) })).status).toBe(200)
    expect((await inDatabase(url, [docId])).get(docId)?.getText('t').toString()).toBe('posted') // durable before the 200
    expect(await (await fetch(`${http(reader!.url)}/v1/docs/${docId}?format=json`)).json()).toEqual({ t: 'posted' })
    const listing = await (await fetch(`${http(reader!.url)}/v1/docs?prefix=http/`)).json() as { docs: Array<{ id: string }> }
    expect(listing.docs.map(entry => entry.id)).toEqual([docId])
    expect((await fetch(`${http(reader!.url)}/v1/docs/${docId}`, { method: 'DELETE' })).status).toBe(204)
    for (const relay of group.relays) expect((await fetch(`${http(relay.url)}/v1/docs/${docId}`)).status).toBe(404)
    expect((await inDatabase(url, [docId])).get(docId)?.getText('t').toString() ?? '').toBe('')
  })

  it('loses no acknowledged write when each relay in turn is killed under load, and fails over within the lease and a second', async () => {
    const seed = testSeed()
    const random = prng(seed)
    try {
      const { url, group } = await relays(['r1', 'r2', 'r3'])
      const ids = group.relays.map(relay => relay.id)
      const docIds = Array.from({ length: 9 }, (_, i) => `load/${i}`)
      const clients = group.relays.map(relay => replica(relay.url))
      const arrays = await Promise.all(clients.map(async r => Promise.all(docIds.map(async id => (await r.open(id)).getArray<string>('items')))))
      await Promise.all(clients.flatMap(r => docIds.map(id => r.doc(id).synced())))

      const acked = new Map<string, string[]>(docIds.map(id => [id, []]))
      let written = 0
      const writes: Array<Promise<void>> = []
      const write = (client: number, doc: number): Promise<void> => {
        const token = `${client}:${written++}`
        arrays[client]![doc]!.push([token])
        const done = clients[client]!.doc(docIds[doc]!).durable().then(() => { acked.get(docIds[doc]!)!.push(token) }, () => {})
        writes.push(done)
        return done
      }
      let loading = true
      const load = (async () => {
        while (loading) {
          write(random.int(clients.length), random.int(docIds.length))
          await new Promise(resolve => setTimeout(resolve, 3))
        }
      })()
      const failovers: number[] = []
      for (const victim of ids) {
        await new Promise(resolve => setTimeout(resolve, 300)) // load before the kill
        await group.kill(victim)
        const killedAt = performance.now()
        const ackedBeforeKill = new Map([...acked].map(([id, tokens]) => [id, [...tokens]]))
        // Every acknowledged write was committed to the database before it was acknowledged.
        const stored = await itemsInDatabase(url, docIds)
        for (const id of docIds) expect(ackedBeforeKill.get(id)!.filter(token => !stored.get(id)!.has(token)), `${id} after killing ${victim}`).toEqual([])
        // Failover: a document the victim served is durably writable again, from a client of another relay.
        const affected = docIds.find(id => homeOf(id, ids) === victim)!
        const writer = ids.indexOf(ids.find(id => id !== victim)!)
        await write(writer, docIds.indexOf(affected))
        failovers.push(performance.now() - killedAt)
        await group.start(victim)
      }
      loading = false
      await load
      await Promise.all(writes)
      console.log(`relays on PostgreSQL (lease ${LEASE_MS} ms): failover after kill -9 in ${failovers.map(ms => ms.toFixed(0)).join(', ')} ms`)
      for (const ms of failovers) expect(ms).toBeLessThan(LEASE_MS + 1000)

      // Convergence, and every acknowledged write in every client and in the database.
      const stored = await itemsInDatabase(url, docIds)
      for (const [docIndex, id] of docIds.entries()) {
        await until(`clients to converge on ${id}`, cb => {
          const docs = arrays.map(a => a[docIndex]!.doc!)
          for (const d of docs) d.on('update', cb)
          return () => { for (const d of docs) d.off('update', cb) }
        }, () => new Set(arrays.map(a => JSON.stringify([...a[docIndex]!.toArray()].sort()))).size === 1, 15_000)
        const items = new Set(arrays[0]![docIndex]!.toArray())
        expect(acked.get(id)!.filter(token => !items.has(token) || !stored.get(id)!.has(token))).toEqual([])
      }
      expect(written).toBe([...acked.values()].reduce((sum, tokens) => sum + tokens.length, 0))
    } catch (error) {
      console.error(`PostgreSQL relay kill test failed with SEED=${seed}`)
      throw error
    }
  }, 90_000)

  it('takes a fourth relay in with no restart: it serves its share, and documents move to it', async () => {
    const { url, group } = await relays(['r1', 'r2', 'r3'])
    const four = ['r1', 'r2', 'r3', 'r4']
    // A document the fourth relay will serve, edited before it exists.
    const docId = Array.from({ length: 100 }, (_, i) => `join/${i}`).find(id => homeOf(id, four) === 'r4')!
    const before = stock(group.byId('r1').url, docId)
    await before.synced()
    before.text.insert(0, 'before ')
    const native = replica(group.byId('r2').url)
    const doc = await native.open(docId)
    await until('the replica to get the edit', cb => { doc.on('update', cb); return () => doc.off('update', cb) }, () => doc.getText('t').toString() === 'before ')

    const r4 = await group.start('r4')
    await r4.waitForLog('registered with the database')
    // The old home hands the document over; stock and native clients follow it to r4.
    doc.getText('t').insert(7, 'after')
    await native.doc(docId).durable()
    await before.textIs('before after', 10_000)
    await expect.poll(async () => (await healthOf(group.byId('r4').url)).body.documents, { timeout: 5000 }).toBe(1)
    // A stock client on any relay, through a plain load balancer, sees the same document.
    const late = stock(group.byId('r3').url, docId)
    await late.textIs('before after')
    expect((await inDatabase(url, [docId])).get(docId)!.getText('t').toString()).toBe('before after')
  })

  it('drops the documents of a relay that was paused past its lease, and loses nothing', async () => {
    const { url, group } = await relays(['r1', 'r2'])
    const docId = Array.from({ length: 100 }, (_, i) => `paused/${i}`).find(id => homeOf(id, ['r1', 'r2']) === 'r1')!
    const onR1 = replica(group.byId('r1').url)
    const a = await onR1.open(docId)
    a.getText('t').insert(0, 'a')
    await onR1.doc(docId).durable()
    const r1 = group.byId('r1').process!
    const r2 = group.byId('r2').process!
    const since = r2.logs.length
    r1.child.kill('SIGSTOP')
    let b: Y.Doc
    try {
      // Once r1's lease has run out, r2 serves the document (a paused relay's clients wait for it: their sockets stay open).
      await r2.waitForLog(entry => r2.logs.indexOf(entry) >= since && entry.msg === 'live relays changed' && JSON.stringify(entry.relays) === '["r2"]', 10_000)
      const onR2 = replica(group.byId('r2').url)
      b = await onR2.open(docId)
      await until('r2 to serve what r1 stored', cb => { b.on('update', cb); return () => b.off('update', cb) }, () => b.getText('t').toString() === 'a')
      b.getText('t').insert(0, 'b')
      await onR2.doc(docId).durable()
    } finally {
      r1.child.kill('SIGCONT')
    }
    // r1 notices on its next heartbeat, drops the document, joins again, and serves it again once r2 hands it back.
    await r1.waitForLog(entry => String(entry.msg).startsWith('this relay lost its lease'), 10_000)
    a.getText('t').insert(0, 'c')
    await onR1.doc(docId).durable()
    const text = (d: Y.Doc): string => d.getText('t').toString()
    await until('both replicas to converge', cb => {
      a.on('update', cb)
      b.on('update', cb)
      return () => { a.off('update', cb); b.off('update', cb) }
    }, () => text(a).length === 3 && text(a) === text(b), 10_000)
    expect(text((await inDatabase(url, [docId])).get(docId)!).split('').sort().join('')).toBe('abc')
  }, 30_000)

  it('acknowledges nothing while PostgreSQL is down, answers 503, and resumes by itself, losing no acknowledged write', async () => {
    const { url, group } = await relays(['r1', 'r2'])
    const docIds = ['outage/a', 'outage/b', 'outage/c']
    const r = replica(group.byId('r1').url)
    const arrays = await Promise.all(docIds.map(async id => (await r.open(id)).getArray<string>('items')))
    const acked = new Set<string>()
    let written = 0
    const write = (doc: number): Promise<void> => {
      const token = `${written++}`
      arrays[doc]!.push([token])
      return r.doc(docIds[doc]!).durable().then(() => { acked.add(token) }, () => {})
    }
    await Promise.all(docIds.map((_, i) => write(i)))
    let loading = true
    const writes: Array<Promise<void>> = []
    const load = (async () => {
      while (loading) {
        writes.push(write(written % docIds.length))
        await new Promise(resolve => setTimeout(resolve, 5))
      }
    })()
    await new Promise(resolve => setTimeout(resolve, 200))
    await server.stop('immediate')
    const ackedAtCrash = new Set(acked)
    try {
      for (const relay of group.relays) {
        if (relay.process!.child.exitCode !== null) throw new Error(`${relay.id} exited: ${JSON.stringify(relay.process!.logs.slice(-5))}`)
        await expect.poll(async () => (await healthOf(relay.url)).status, { timeout: 10_000, interval: 50 }).toBe(503)
        await relay.process!.waitForLog(entry => String(entry.msg).startsWith('PostgreSQL is unreachable ('), 5000)
      }
      // Writes made while the database is down stay unacknowledged.
      const ackedWhileDown = acked.size
      await new Promise(resolve => setTimeout(resolve, 300))
      expect(acked.size).toBe(ackedWhileDown)
    } finally {
      await server.start()
    }
    // Acknowledgements resume by themselves.
    // Each wait is bounded, so that a stall says where it is rather than timing the test out.
    const diagnosis = (): string => [
      `pending ${JSON.stringify(docIds.map(id => r.doc(id).pending))}, peers ${JSON.stringify(docIds.map(id => r.doc(id).peers))}`,
      ...group.relays.map(relay => `${relay.id}: ${JSON.stringify(relay.process!.logs.slice(-8).map(entry => entry.msg))}`)
    ].join('\n')
    const within = async (what: string, promise: Promise<unknown>): Promise<void> => {
      let timer: ReturnType<typeof setTimeout> | undefined
      await Promise.race([promise, new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: not within 15 s after PostgreSQL restarted\n${diagnosis()}`)), 15_000)
      })]).finally(() => clearTimeout(timer))
    }
    await within('the first acknowledgement', write(0))
    for (const relay of group.relays) await expect.poll(async () => (await healthOf(relay.url)).status, { timeout: 10_000, interval: 50 }).toBe(200)
    loading = false
    await load
    await within('every write acknowledged', Promise.all(writes))
    const stored = await itemsInDatabase(url, docIds)
    const all = new Set([...stored.values()].flatMap(items => [...items]))
    expect([...ackedAtCrash].filter(token => !all.has(token))).toEqual([])
    expect([...acked].filter(token => !all.has(token))).toEqual([])
    expect(acked.size).toBe(written)
    for (const relay of group.relays) expect(relay.process!.logs.some(entry => entry.msg === 'PostgreSQL is reachable again')).toBe(true)
  }, 60_000)
})
