/**
 * Cluster figures: failover time over 20 kills, write throughput with W=1 and W=2 as
 * ratios to a single relay, and the time to rebalance 1,000 documents when a relay joins.
 */
import { join } from 'node:path'
import { Replica } from '../client/replica.js'
import { SqliteStore } from '../client/node.js'
import { homesOf } from '../shared/placement.js'
import { startCluster } from '../test/helpers/cluster-process.js'
import { startRelayProcess } from '../test/helpers/relay-process.js'
import { UNLIMITED } from './servers.js'
import { ascending, percentile, round, withTempDir } from './stats.js'


export function failover (kills = 20): Promise<Record<string, number | string>> {
  return withTempDir(async dir => {
    const cluster = await startCluster(join(dir, 'cluster'), 3, { copies: 3, writeQuorum: 2, extraArgs: UNLIMITED })
    const replica = new Replica({ store: new SqliteStore(join(dir, 'client.db')), relays: [cluster.relays[0]!.url], minReconnectDelayMs: 20, maxReconnectDelayMs: 200 })
    try {
      // One document per relay, each placed first on that relay.
      const docs = new Map<string, string>()
      for (let i = 0; docs.size < cluster.relays.length; i++) {
        const id = `failover/${i}`
        const first = homesOf(id, cluster.relays, 3)[0]!.id
        if (!docs.has(first)) docs.set(first, id)
      }
      for (const id of docs.values()) await replica.open(id)
      const times: number[] = []
      for (let k = 0; k < kills; k++) {
        const victim = cluster.relays[k % cluster.relays.length]!
        const docId = docs.get(victim.id)!
        const doc = await replica.open(docId)
        doc.getArray('items').push([`before ${k}`])
        await replica.doc(docId).durable()
        await cluster.kill(victim.id)
        const killedAt = performance.now()
        doc.getArray('items').push([`after ${k}`])
        await replica.doc(docId).durable()
        times.push(performance.now() - killedAt)
        await cluster.start(victim.id)
      }
      return {
        kills,
        'failover p50 (ms)': round(percentile(ascending(times), 0.5), 1),
        'failover p99 (ms)': round(percentile(ascending(times), 0.99), 1),
        'failover max (ms)': round(Math.max(...times), 1),
        definition: 'kill -9 of the document\'s first replica until a write made right after is acknowledged (W=2 of R=3)'
      }
    } finally {
      await replica.close()
      await cluster.stopAll()
    }
  })
}

/** Acknowledged updates per second for one replica writing `updates` updates over 10 documents. */
async function throughput (url: string, dir: string, updates = 6000): Promise<number> {
  const replica = new Replica({ store: new SqliteStore(join(dir, `client-${Math.random()}.db`)), relays: [url] })
  const ids = Array.from({ length: 10 }, (_, i) => `tp/${i}`)
  const docs = await Promise.all(ids.map(id => replica.open(id)))
  await Promise.all(ids.map(id => replica.doc(id).synced()))
  const start = performance.now()
  for (let i = 0; i < updates; i += 50) {
    for (let j = i; j < i + 50; j++) docs[j % docs.length]!.getArray('items').push([j])
    await new Promise(resolve => setImmediate(resolve))
  }
  await Promise.all(ids.map(id => replica.doc(id).durable()))
  const seconds = (performance.now() - start) / 1000
  await replica.close()
  return updates / seconds
}

export function writeThroughput (): Promise<Record<string, number | string>> {
  return withTempDir(async dir => {
    const single = await startRelayProcess(join(dir, 'single'), UNLIMITED)
    const singleRate = await throughput(single.url, dir)
    await single.stop()
    const rates: Record<string, number> = {}
    for (const w of [1, 2]) {
      const cluster = await startCluster(join(dir, `w${w}`), 3, { copies: 3, writeQuorum: w, extraArgs: UNLIMITED })
      rates[w] = await throughput(cluster.relays[0]!.url, dir)
      await cluster.stopAll()
    }
    return {
      'single relay (acked updates/s)': Math.round(singleRate),
      'cluster R=3 W=1 (acked updates/s)': Math.round(rates[1]!),
      'cluster R=3 W=2 (acked updates/s)': Math.round(rates[2]!),
      'W=1 / single': round(rates[1]! / singleRate, 2),
      'W=2 / single': round(rates[2]! / singleRate, 2)
    }
  })
}

export function rebalance (documents = 1000): Promise<Record<string, number | string>> {
  return withTempDir(async dir => {
    const cluster = await startCluster(join(dir, 'cluster'), 3, { copies: 2, writeQuorum: 2, extraArgs: UNLIMITED })
    const replica = new Replica({ store: new SqliteStore(join(dir, 'client.db')), relays: [cluster.relays[0]!.url] })
    const ids = Array.from({ length: documents }, (_, i) => `rebalance/${i}`)
    for (const id of ids) (await replica.open(id)).getText('t').insert(0, `document ${id}`)
    await Promise.all(ids.map(id => replica.doc(id).durable()))
    await replica.close()
    await cluster.stopAll('SIGTERM')
    await cluster.add('r4')
    const start = performance.now()
    const started = await Promise.all(cluster.relays.map(r => cluster.start(r.id)))
    const reports = await Promise.all(started.map(p => p.waitForLog('rebalance complete', 300_000)))
    const ms = performance.now() - start
    await cluster.stopAll()
    return {
      documents,
      'relays before / after': '3 / 4 (R=2, W=2)',
      'time until every relay finished (ms)': Math.round(ms),
      'copies handed off and dropped': reports.reduce((sum, r) => sum + (r.handedOff as number), 0)
    }
  })
}
