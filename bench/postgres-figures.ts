/**
 * Figures of relays on one PostgreSQL database: failover time over 20 kills of three
 * relays, and the time for a fourth relay to take its share of 1,000 open documents.
 * Relays run with the default lease (3 s) on the benchmark's PostgreSQL server (fsync on).
 */
import { join } from 'node:path'
import { Replica } from '../client/replica.js'
import { SqliteStore } from '../client/node.js'
import { preferenceList } from '../shared/placement.js'
import { DEFAULT_LEASE_MS } from '../server/postgres/postgres-node.js'
import { healthOf, startPostgresRelays } from '../test/helpers/postgres-relays.js'
import { benchDatabase } from './postgres.js'
import { UNLIMITED } from './servers.js'
import { ascending, percentile, round, withTempDir } from './stats.js'

const homeOf = (docId: string, ids: string[]): string => preferenceList(docId, ids.map(id => ({ id })))[0]!.id

/** kill -9 of a document's relay until a write made right after is acknowledged, `kills` times over three relays. */
export function postgresFailover (kills = 20): Promise<Record<string, number | string>> {
  return withTempDir(async dir => {
    const url = await benchDatabase(join(dir, 'failover'))
    const ids = ['r1', 'r2', 'r3']
    const relays = await startPostgresRelays(url, ids, { leaseMs: DEFAULT_LEASE_MS, extraArgs: UNLIMITED })
    const replica = new Replica({ store: new SqliteStore(join(dir, 'client.db')), relays: [relays.relays[0]!.url], minReconnectDelayMs: 20, maxReconnectDelayMs: 200 })
    try {
      // One document per relay, each served by that relay.
      const docs = new Map<string, string>()
      for (let i = 0; docs.size < ids.length; i++) {
        const id = `failover/${i}`
        if (!docs.has(homeOf(id, ids))) docs.set(homeOf(id, ids), id)
      }
      for (const id of docs.values()) await replica.open(id)
      const times: number[] = []
      for (let k = 0; k < kills; k++) {
        const victim = ids[k % ids.length]!
        const docId = docs.get(victim)!
        const doc = await replica.open(docId)
        doc.getArray('items').push([`before ${k}`])
        await replica.doc(docId).durable()
        await relays.kill(victim)
        const killedAt = performance.now()
        doc.getArray('items').push([`after ${k}`])
        await replica.doc(docId).durable()
        times.push(performance.now() - killedAt)
        const restarted = await relays.start(victim)
        await restarted.waitForLog('registered with the database')
        // The document is back on its relay before the next round: wait until that relay serves it.
        doc.getArray('items').push([`back ${k}`])
        await replica.doc(docId).durable()
      }
      return {
        kills,
        'lease (ms)': DEFAULT_LEASE_MS,
        'failover p50 (ms)': round(percentile(ascending(times), 0.5), 1),
        'failover p99 (ms)': round(percentile(ascending(times), 0.99), 1),
        'failover max (ms)': round(Math.max(...times), 1),
        definition: 'kill -9 of the relay serving a document until a write made right after is acknowledged (three relays, one PostgreSQL)'
      }
    } finally {
      await replica.close()
      await relays.stopAll()
    }
  })
}

/** 1,000 documents open on three relays; a fourth joins: time until it serves its share. */
export function postgresJoin (documents = 1000): Promise<Record<string, number | string>> {
  return withTempDir(async dir => {
    const url = await benchDatabase(join(dir, 'join'))
    const relays = await startPostgresRelays(url, ['r1', 'r2', 'r3'], { leaseMs: DEFAULT_LEASE_MS, extraArgs: UNLIMITED })
    const replica = new Replica({ store: new SqliteStore(join(dir, 'client.db')), relays: [relays.relays[0]!.url], minReconnectDelayMs: 20, maxReconnectDelayMs: 200 })
    try {
      const ids = Array.from({ length: documents }, (_, i) => `join/${i}`)
      for (const id of ids) (await replica.open(id)).getText('t').insert(0, id)
      await Promise.all(ids.map(id => replica.doc(id).durable()))
      const share = ids.filter(id => homeOf(id, ['r1', 'r2', 'r3', 'r4']) === 'r4')
      const start = performance.now()
      const r4 = await relays.start('r4')
      const registered = performance.now()
      await r4.waitForLog('registered with the database')
      const r4Url = relays.byId('r4').url
      // Polling another process's figures: /healthz counts the documents r4 holds.
      while ((await healthOf(r4Url)).body.documents < share.length) {
        if (performance.now() - start > 120_000) throw new Error('r4 did not take its share within 120 s')
        await new Promise(resolve => setTimeout(resolve, 20))
      }
      const served = performance.now()
      // Every moved document is writable on r4.
      for (const id of share) (await replica.open(id)).getText('t').insert(0, '+')
      await Promise.all(share.map(id => replica.doc(id).durable()))
      const writable = performance.now()
      return {
        'documents open': documents,
        'share of the fourth relay': share.length,
        'relay start to listening (ms)': Math.round(registered - start),
        'relay start until it holds its share (ms)': Math.round(served - start),
        'until a write to each moved document is acknowledged (ms)': Math.round(writable - start)
      }
    } finally {
      await replica.close()
      await relays.stopAll()
    }
  })
}
