/**
 * Node replicas with SQLite stores against a relay in a child process, over real sockets:
 * offline edits converge once the relay starts, acknowledged writes survive kill -9 of the
 * relay, and a replica restarted offline uploads what was never acknowledged.
 */
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { Replica } from '../../client/replica.js'
import { SqliteStore } from '../../client/node.js'
import { parseDocId } from '../../shared/wire/doc-id.js'
import { PersistedDoc } from '../../shared/storage/persisted-doc.js'
import { relayDatabasePath } from '../../server/data-dir.js'
import { until } from '../helpers/events.js'
import { stockClient } from '../helpers/stock-client.js'
import { prng, testSeed } from '../helpers/prng.js'
import { freePort, startRelayProcess, type RelayProcess } from '../helpers/relay-process.js'
import { tempDir } from '../helpers/temp.js'

const root = tempDir()
let n = 0
const fresh = (name: string): string => join(root, `${name}-${n++}`)
const replicas: Replica[] = []
const relays: RelayProcess[] = []

afterEach(async () => {
  await Promise.all(replicas.splice(0).map(r => r.close()))
  await Promise.all(relays.splice(0).map(r => r.stop('SIGKILL')))
})

function replica (dbPath: string, url: string): Replica {
  const r = new Replica({ store: new SqliteStore(dbPath), relays: [url], minReconnectDelayMs: 5, maxReconnectDelayMs: 50 })
  replicas.push(r)
  return r
}
async function relayOn (port: number, dataDir: string): Promise<RelayProcess> {
  const relay = await startRelayProcess(dataDir, [], port)
  relays.push(relay)
  return relay
}
const textOf = (doc: Y.Doc): string => doc.getText('t').toString()

/** Reads the (stopped) relay's database directly and checks that every token is in document `log`. */
async function expectOnDisk (relayData: string, tokens: string[]): Promise<void> {
  const store = new SqliteStore(relayDatabasePath(relayData))
  const doc = new Y.Doc()
  await PersistedDoc.load(store, parseDocId('log'), doc)
  await store.close()
  const onDisk = new Set(doc.getArray<string>('items').toArray())
  expect(tokens.filter(token => !onDisk.has(token))).toEqual([])
}

describe('replicas against a relay process', () => {
  it('converges two replicas that edited while the relay was down', async () => {
    const port = await freePort()
    const url = `ws://127.0.0.1:${port}`
    const a = replica(join(fresh('a'), 'local.db'), url)
    const b = replica(join(fresh('b'), 'local.db'), url)
    const docA = await a.open('notes/1')
    const docB = await b.open('notes/1')
    docA.getText('t').insert(0, 'from a. ')
    docB.getText('t').insert(0, 'from b. ')
    docB.getText('t').delete(0, 5)
    await Promise.all([a.doc('notes/1').saved(), b.doc('notes/1').saved()])
    expect(a.doc('notes/1').pending).toBe(1)
    expect(b.doc('notes/1').pending).toBe(2)

    await relayOn(port, fresh('relay'))
    await Promise.all([a.doc('notes/1').durable(), b.doc('notes/1').durable()])
    expect([a.doc('notes/1').pending, b.doc('notes/1').pending]).toEqual([0, 0])
    await until('a and b to converge', cb => {
      docA.on('update', cb); docB.on('update', cb)
      return () => { docA.off('update', cb); docB.off('update', cb) }
    }, () => textOf(docA) === textOf(docB) && textOf(docA).includes('from a. ') && textOf(docA).includes('b. '))
  })

  it('syncs a native replica with a stock y-websocket client on the same port', async () => {
    const relay = await relayOn(0, fresh('relay'))
    const native = replica(join(fresh('native'), 'local.db'), relay.url)
    const doc = await native.open('mixed/1')
    const stock = stockClient(relay.url, 'mixed/1')
    try {
      await Promise.all([native.doc('mixed/1').synced(), stock.synced()])
      doc.getText('t').insert(0, 'native ')
      await stock.textIs('native ')
      stock.text.insert(7, 'stock')
      await until('the stock edit to reach the replica', cb => { doc.on('update', cb); return () => doc.off('update', cb) },
        () => textOf(doc) === 'native stock')
    } finally {
      stock.destroy()
    }
  })

  it('uploads, after a restart while offline, the changes that were never acknowledged', async () => {
    const port = await freePort()
    const url = `ws://127.0.0.1:${port}`
    const db = join(fresh('offline'), 'local.db')
    const first = new Replica({ store: new SqliteStore(db), relays: [url], minReconnectDelayMs: 5 })
    ;(await first.open('todo')).getText('t').insert(0, 'buy milk')
    await first.close()

    const second = replica(db, url)
    await second.open('todo')
    expect(second.doc('todo').pending).toBe(1)
    await relayOn(port, fresh('relay'))
    await second.doc('todo').durable()
    expect(second.doc('todo').pending).toBe(0)

    const reader = replica(join(fresh('reader'), 'local.db'), url)
    const doc = await reader.open('todo')
    await reader.doc('todo').synced()
    expect(textOf(doc)).toBe('buy milk')
  })

  it('loses no acknowledged write when the relay is killed with SIGKILL at random moments', async () => {
    const seed = testSeed()
    const random = prng(seed)
    try {
      const port = await freePort()
      const url = `ws://127.0.0.1:${port}`
      const relayData = fresh('relay')
      let relay = await relayOn(port, relayData)
      const writer = replica(join(fresh('writer'), 'local.db'), url)
      const items = (await writer.open('log')).getArray<string>('items')
      const acknowledged: string[] = []
      for (let round = 0; round < 8; round++) {
        await writer.doc('log').synced()
        const inFlight: Array<Promise<void>> = []
        const killAt = random.int(40)
        for (let i = 0; i < 40; i++) {
          if (i === killAt) {
            await relay.stop('SIGKILL')
            await expectOnDisk(relayData, [...acknowledged])
          }
          const token = `${round}.${i}`
          items.push([token])
          inFlight.push(writer.doc('log').durable().then(() => { acknowledged.push(token) }, () => {}))
          if (random.next() < 0.3) await new Promise(resolve => setImmediate(resolve))
        }
        relay = await relayOn(port, relayData)
        await Promise.all(inFlight)
      }
      await writer.doc('log').durable()
      expect(writer.doc('log').pending).toBe(0)
      expect(acknowledged).toHaveLength(8 * 40)
      await relay.stop('SIGKILL')
      await expectOnDisk(relayData, acknowledged)
      relay = await relayOn(port, relayData)

      const reader = replica(join(fresh('reader'), 'local.db'), url)
      const readDoc = await reader.open('log')
      await reader.doc('log').synced()
      const stored = new Set(readDoc.getArray<string>('items').toArray())
      expect(acknowledged.filter(token => !stored.has(token))).toEqual([])
    } catch (error) {
      console.error(`kill -9 durability test failed with SEED=${seed}`)
      throw error
    }
  })
})
