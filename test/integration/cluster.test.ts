/**
 * Relay clusters of child processes on loopback: placement on R relays, write quorum on
 * disk, kill -9 under load with failover, rebalancing, and stock clients on relays that do
 * not replicate their document.
 */
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { Replica } from '../../client/replica.js'
import { SqliteStore } from '../../client/node.js'
import { parseDocId } from '../../shared/wire/doc-id.js'
import { PersistedDoc } from '../../shared/storage/persisted-doc.js'
import { homesOf } from '../../shared/placement.js'
import { relayDatabasePath } from '../../server/data-dir.js'
import { startCluster, type TestCluster } from '../helpers/cluster-process.js'
import { until } from '../helpers/events.js'
import { prng, testSeed } from '../helpers/prng.js'
import { stockClient } from '../helpers/stock-client.js'
import { tcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js'
import { tempDir } from '../helpers/temp.js'

const root = tempDir()
let n = 0
const fresh = (name: string): string => join(root, `${name}-${n++}`)
const clusters: TestCluster[] = []
const replicas: Replica[] = []
afterEach(async () => {
  await Promise.all(replicas.splice(0).map(r => r.close()))
  await Promise.all(clusters.splice(0).map(c => c.stopAll()))
})

async function cluster (size: number, settings: Parameters<typeof startCluster>[2] = {}): Promise<TestCluster> {
  const c = await startCluster(fresh('cluster'), size, settings)
  clusters.push(c)
  return c
}
function replica (url: string): Replica {
  const r = new Replica({ store: new SqliteStore(join(fresh('replica'), 'local.db')), relays: [url], minReconnectDelayMs: 20, maxReconnectDelayMs: 200 })
  replicas.push(r)
  return r
}

/** What relay `dataDir` has on disk for `docId` (the relay must be stopped, or tolerate a reader). */
async function onDisk (dataDir: string, docId: string): Promise<Y.Doc | null> {
  const store = new SqliteStore(relayDatabasePath(dataDir))
  try {
    if (await store.load(parseDocId(docId)) === null) return null
    const doc = new Y.Doc()
    await PersistedDoc.load(store, parseDocId(docId), doc)
    return doc
  } finally {
    await store.close()
  }
}

describe('relay cluster', () => {
  it('places each document on R relays and acknowledges a write only once W of them committed it', async () => {
    const c = await cluster(3, { copies: 2, writeQuorum: 2 })
    const r = replica(c.relays[0]!.url)
    const ids = ['placed/a', 'placed/b', 'placed/c', 'placed/d']
    for (const id of ids) (await r.open(id)).getText('t').insert(0, id)
    await Promise.all(ids.map(id => r.doc(id).durable()))
    await c.stopAll()
    for (const id of ids) {
      const expected = homesOf(id, c.relays, 2).map(relay => relay.id).sort()
      const holders: string[] = []
      for (const relay of c.relays) {
        const doc = await onDisk(relay.dataDir, id)
        if (doc?.getText('t').toString() === id) holders.push(relay.id)
      }
      // W=2 of R=2: both replicas have it on disk the moment it is acknowledged, and nobody else.
      expect(holders.sort()).toEqual(expected)
    }
  })

  it('stores a forwarded update once on every replica: a replica that has it does not forward it again', async () => {
    const c = await cluster(3, { copies: 3, writeQuorum: 3 })
    const r = replica(c.relays[0]!.url)
    const doc = await r.open('forwarded/once')
    const first = doc.clientID
    doc.getText('t').insert(0, 'first')
    await r.doc('forwarded/once').durable()
    // The second write is acknowledged once all three committed it, after every copy of the first.
    doc.getText('t').insert(5, ' second')
    await r.doc('forwarded/once').durable()
    await c.stopAll('SIGTERM')
    for (const relay of c.relays) {
      const store = new SqliteStore(relayDatabasePath(relay.dataDir))
      const stored = (await store.load(parseDocId('forwarded/once')))!
      await store.close()
      const copies = [stored.snapshot, ...stored.updates].filter(part => part !== null && Y.decodeUpdate(part).structs.some(struct => struct.id.client === first && struct.id.clock === 0))
      expect(copies, relay.id).toHaveLength(1)
    }
  })

  it('does not count a replica that refused an update towards the write quorum, even once it could acknowledge a later one', async () => {
    const settings: Parameters<typeof startCluster>[2] = { copies: 2, writeQuorum: 2 }
    const c = await cluster(2, settings)
    // r2 takes only small documents: it refuses the big update r1 forwards to it.
    settings.extraArgs = ['--max-document-bytes', '2000']
    await c.start('r2')
    const r = replica(c.relays[0]!.url)
    const doc = await r.open('quorum/refused')
    doc.getText('t').insert(0, 'small')
    await r.doc('quorum/refused').durable()
    doc.getText('t').insert(0, 'x'.repeat(5000))
    await c.relays[1]!.process!.waitForLog('refusing a document on a connection')
    doc.getText('t').insert(0, 'y')
    // Acknowledgements travel in order: once another document's write is acknowledged, any
    // (wrong) acknowledgement of the refused one would have arrived before it.
    const other = await r.open('quorum/other')
    other.getText('t').insert(0, 'other')
    await r.doc('quorum/other').durable()
    expect(r.doc('quorum/refused').pending).toBe(2)
  })

  it('reports clients and relay links apart in /healthz, and cluster members and replication in /metrics', async () => {
    const c = await cluster(3, { copies: 3, writeQuorum: 2 })
    const health = async (url: string): Promise<{ clients: number, relayLinks: number }> =>
      await (await fetch(url.replace('ws:', 'http:') + '/healthz')).json() as { clients: number, relayLinks: number }
    const deadline = Date.now() + 10_000
    while ((await Promise.all(c.relays.map(relay => health(relay.url)))).some(h => !(h.relayLinks >= 2))) {
      if (Date.now() > deadline) throw new Error('relay links did not come up within 10 s')
      await new Promise(resolve => setTimeout(resolve, 20)) // polling another process's state: there is no event to await
    }
    const stock = stockClient(c.relays[2]!.url, 'health/one-client')
    try {
      await stock.synced()
      const figures = await Promise.all(c.relays.map(relay => health(relay.url)))
      // r3 accepted two relay links (r1 and r2 dial it) and one client; those links are not clients.
      expect(figures.map(({ clients, relayLinks }) => ({ clients, relayLinks }))).toEqual([{ clients: 0, relayLinks: 2 }, { clients: 0, relayLinks: 2 }, { clients: 1, relayLinks: 2 }])
      const native = replica(c.relays[2]!.url)
      ;(await native.open('health/one-client')).getText('t').insert(0, 'replicated')
      await native.doc('health/one-client').durable() // W=2: another home confirmed it
      const metrics = await (await fetch(c.relays[2]!.url.replace('ws:', 'http:') + '/metrics')).text()
      const sample = (name: string): number => Number(new RegExp(`^${name.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm').exec(metrics)?.[1])
      expect(sample('petaldb_cluster_members{state="total"}')).toBe(3)
      expect(sample('petaldb_cluster_members{state="linked"}')).toBe(3)
      expect(sample('petaldb_connections{kind="relay"}')).toBe(2)
      expect(sample('petaldb_connections{kind="y-websocket"}')).toBe(1)
      expect(sample('petaldb_replication_seconds_count')).toBeGreaterThanOrEqual(1)
    } finally {
      stock.destroy()
    }
  })

  it('redirects native clients and passes stock clients through from a relay that is not a replica', async () => {
    const c = await cluster(3, { copies: 1, writeQuorum: 1 })
    const docId = 'routed/doc'
    const [owner] = homesOf(docId, c.relays, 1)
    const outsider = c.relays.find(relay => relay.id !== owner!.id)!
    const native = replica(outsider.url)
    const doc = await native.open(docId)
    await native.doc(docId).synced()
    const stock = stockClient(outsider.url, docId)
    try {
      await stock.synced()
      doc.getText('t').insert(0, 'native ')
      await stock.textIs('native ')
      stock.text.insert(7, 'stock')
      await until('the stock edit to reach the replica', cb => { doc.on('update', cb); return () => doc.off('update', cb) },
        () => doc.getText('t').toString() === 'native stock')
      await native.doc(docId).durable()
    } finally {
      stock.destroy()
    }
    // Stock clients get no acknowledgement: stop gracefully so the relay commits what is pending.
    await c.stopAll('SIGTERM')
    expect((await onDisk(owner!.dataDir, docId))?.getText('t').toString()).toBe('native stock')
    expect(await onDisk(outsider.dataDir, docId)).toBeNull()
  })
})

/** Reads every relay's database (running relays included: SQLite readers see committed data). */
async function tokensOnDisk (dataDirs: string[], docIds: string[]): Promise<Map<string, Set<string>>> {
  const found = new Map<string, Set<string>>()
  for (const docId of docIds) {
    const tokens = new Set<string>()
    for (const dir of dataDirs) {
      const doc = await onDisk(dir, docId).catch(() => null)
      for (const token of doc?.getArray<string>('items').toArray() ?? []) tokens.add(token)
    }
    found.set(docId, tokens)
  }
  return found
}

describe('relay cluster under failure', () => {
  it.each([[3], [5]])('loses no acknowledged write when one of %i relays is killed under load, and fails over', async (size) => {
    const seed = testSeed()
    const random = prng(seed)
    try {
      const c = await cluster(size, { copies: 3, writeQuorum: 2 })
      const docIds = Array.from({ length: 12 }, (_, i) => `load/${i}`)
      const clients = c.relays.slice(0, 3).map(relay => replica(relay.url))
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
      const victim = c.relays[random.int(size)]!
      const loadFor = async (ms: number): Promise<void> => {
        const end = Date.now() + ms
        while (Date.now() < end) {
          write(random.int(clients.length), random.int(docIds.length))
          await new Promise(resolve => setTimeout(resolve, 2))
        }
      }
      await loadFor(800)

      await c.kill(victim.id)
      const killedAt = performance.now()
      const ackedBeforeKill = new Map([...acked].map(([id, tokens]) => [id, [...tokens]]))
      // Every acknowledged write is on W=2 disks, so the survivors hold it.
      const survivors = await tokensOnDisk(c.relays.filter(r => r !== victim).map(r => r.dataDir), docIds)
      for (const id of docIds) expect(ackedBeforeKill.get(id)!.filter(t => !survivors.get(id)!.has(t)), id).toEqual([])

      // Failover: documents whose first replica was the victim are writable (durably) again.
      const affected = docIds.filter(id => homesOf(id, c.relays, 3)[0]!.id === victim.id)
      const failover = await Promise.all(affected.map(async id => {
        await write(0, docIds.indexOf(id))
        return performance.now() - killedAt
      }))
      await loadFor(800)
      await Promise.all(writes)
      console.log(`cluster of ${size}: killed ${victim.id}; failover of ${affected.length} documents in ${failover.map(ms => ms.toFixed(0)).join(', ')} ms`)

      // Convergence: every client holds the same items for every document, all acknowledged.
      for (const [docIndex, id] of docIds.entries()) {
        await until(`clients to converge on ${id}`, cb => {
          const docs = arrays.map(a => a[docIndex]!.doc!)
          for (const d of docs) d.on('update', cb)
          return () => { for (const d of docs) d.off('update', cb) }
        }, () => new Set(arrays.map(a => JSON.stringify([...a[docIndex]!.toArray()].sort()))).size === 1)
        const items = new Set(arrays[0]![docIndex]!.toArray())
        expect(acked.get(id)!.filter(t => !items.has(t))).toEqual([])
      }
      expect(written).toBe([...acked.values()].reduce((sum, tokens) => sum + tokens.length, 0))
    } catch (error) {
      console.error(`cluster kill test failed with SEED=${seed}`)
      throw error
    }
  }, 60_000)
})

describe('relay cluster under partitions', () => {
  it('converges every replica within 5 s after relay-to-relay and client links heal', async () => {
    // Every relay-to-relay link, and one client's link, goes through a proxy that can cut it.
    const proxies = new Map<string, TcpProxy>()
    const ports = new Map<string, number>()
    for (const [from, to] of [['r1', 'r2'], ['r1', 'r3'], ['r2', 'r3']] as const) {
      proxies.set(`${from}-${to}`, await tcpProxy(() => ports.get(to)!))
    }
    const c = await startCluster(fresh('partition'), 3, {
      copies: 3,
      writeQuorum: 1,
      peerUrl: (relay, from) => from.id < relay.id ? proxies.get(`${from.id}-${relay.id}`)!.url : relay.url,
      beforeStart: relays => { for (const relay of relays) ports.set(relay.id, relay.port) }
    })
    clusters.push(c)
    const clientProxy = await tcpProxy(() => ports.get('r2')!)
    const [r1, , r3] = c.relays
    const a = stockClient(r1!.url, 'split')
    const b = stockClient(r3!.url, 'split')
    const viaProxy = stockClient(clientProxy.url, 'split')
    const clients = [a, b, viaProxy]
    try {
      await Promise.all(clients.map(x => x.synced()))
      // Isolate r1 from its peers, and cut the third client off its relay.
      proxies.get('r1-r2')!.cut()
      proxies.get('r1-r3')!.cut()
      clientProxy.cut()
      a.text.insert(0, 'A')
      b.text.insert(0, 'B')
      viaProxy.text.insert(0, 'C')
      // B's edit reaches r2 and r3 only; a round trip through r3 proves it arrived there.
      const probe = stockClient(r3!.url, 'split')
      clients.push(probe)
      await probe.textIs('B')
      expect(a.text.toString()).toBe('A')

      const healedAt = performance.now()
      for (const proxy of [...proxies.values(), clientProxy]) proxy.heal()
      const converged = (): boolean => {
        const texts = clients.map(x => x.text.toString())
        return new Set(texts).size === 1 && texts[0]!.length === 3
      }
      await until('all replicas to converge after healing', cb => {
        for (const x of clients) x.doc.on('update', cb)
        return () => { for (const x of clients) x.doc.off('update', cb) }
      }, converged, 5000)
      console.log(`partition healed; converged in ${(performance.now() - healedAt).toFixed(0)} ms`)
      // Each relay serves the converged state to a fresh client.
      for (const relay of c.relays) {
        const check = stockClient(relay.url, 'split')
        clients.push(check)
        await check.textIs(a.text.toString(), 5000)
      }
    } finally {
      for (const x of clients) x.destroy()
      await Promise.all([...proxies.values(), clientProxy].map(p => p.close()))
    }
  })
})

describe('relay cluster membership changes', () => {
  it('moves documents to their new replicas when a relay joins and when one leaves, under load, losing nothing acknowledged', async () => {
    const c = await cluster(3, { copies: 2, writeQuorum: 2 })
    await Promise.all(c.relays.map(r => r.process!.waitForLog('rebalance complete')))
    const docIds = Array.from({ length: 16 }, (_, i) => `moving/${i}`)
    const clients = [replica(c.relays[0]!.url), replica(c.relays[1]!.url)]
    const arrays = await Promise.all(clients.map(async r => Promise.all(docIds.map(async id => (await r.open(id)).getArray<string>('items')))))
    const acked = new Map<string, string[]>(docIds.map(id => [id, []]))
    const writes: Array<Promise<void>> = []
    let running = true
    let written = 0
    const load = (async () => {
      while (running) {
        const client = written % 2
        const doc = written % docIds.length
        const token = `${client}:${written++}`
        arrays[client]![doc]!.push([token])
        writes.push(clients[client]!.doc(docIds[doc]!).durable().then(() => { acked.get(docIds[doc]!)!.push(token) }, () => {}))
        await new Promise(resolve => setTimeout(resolve, 3))
      }
    })()

    let handedOff = 0
    const rollingRestart = async (ids: string[]): Promise<void> => {
      for (const id of ids) {
        const relay = c.relays.find(r => r.id === id)!
        await relay.process?.stop('SIGTERM')
        const started = await c.start(id)
        handedOff += (await started.waitForLog('rebalance complete', 20_000)).handedOff as number
      }
    }
    // A fourth relay joins: it starts with the new list, then the others restart with it.
    await c.add('r4')
    await c.start('r4')
    await rollingRestart(['r1', 'r2', 'r3'])
    // r1 leaves: the others restart without it.
    await c.remove('r1')
    await rollingRestart(['r2', 'r3', 'r4'])

    running = false
    await load
    await Promise.all(writes)
    expect(written).toBeGreaterThan(100)
    // Relays that stopped replicating a document handed it over and dropped their copy.
    expect(handedOff).toBeGreaterThan(0)
    await Promise.all(replicas.splice(0).map(r => r.close()))
    await c.stopAll()

    for (const id of docIds) {
      const expected = acked.get(id)!
      for (const owner of homesOf(id, c.relays, 2)) {
        const items = new Set((await onDisk(owner.dataDir, id))?.getArray<string>('items').toArray() ?? [])
        expect(expected.filter(token => !items.has(token)), `${id} on ${owner.id}`).toEqual([])
      }
    }
  }, 90_000)
})
