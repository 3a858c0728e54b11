/**
 * Replica behaviour over an in-memory relay: local-first open, durable acknowledgements,
 * reconnection, awareness, list and delete.
 */
import 'fake-indexeddb/auto'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { Replica } from '../../client/replica.js'
import { IndexedDbStore } from '../../shared/storage/indexeddb-store.js'
import { SqliteStore } from '../../shared/storage/sqlite-store.js'
import type { DocStore } from '../../shared/storage/store.js'
import { tempDir } from '../helpers/temp.js'
import { MemoryStore } from '../../shared/storage/memory-store.js'
import { parseDocId } from '../../shared/wire/doc-id.js'
import { until } from '../helpers/events.js'
import { memoryRelay, type MemoryRelay } from '../helpers/memory-relay.js'

const dir = tempDir()
const replicas: Replica[] = []
afterEach(async () => { await Promise.all(replicas.splice(0).map(r => r.close())) })

function replica (relay: MemoryRelay | null, store = new MemoryStore()): Replica {
  const r = new Replica({ store, relays: relay === null ? [] : ['memory://relay'], ...(relay === null ? {} : { connect: relay.connect }), minReconnectDelayMs: 1, maxReconnectDelayMs: 20 })
  replicas.push(r)
  return r
}

const textOf = (doc: Y.Doc): string => doc.getText('t').toString()
const textIs = (doc: Y.Doc, expected: string): Promise<void> =>
  until(`text to be ${JSON.stringify(expected)} (is ${JSON.stringify(textOf(doc))})`, cb => { doc.on('update', cb); return () => doc.off('update', cb) }, () => textOf(doc) === expected)

describe('Replica', () => {
  it('opens documents from local storage with no relay at all', async () => {
    const store = new MemoryStore()
    const first = new Replica({ store })
    const doc = await first.open('notes/1')
    doc.getText('t').insert(0, 'local only')
    await first.doc('notes/1').saved()
    expect(first.doc('notes/1').pending).toBe(1)
    await first.close()
    const second = replica(null, store)
    expect(textOf(await second.open('notes/1'))).toBe('local only')
    expect(second.doc('notes/1').pending).toBe(1)
    // Saved on this device, with no relay to make it durable.
    expect(second.doc('notes/1').status).toBe('saved')
  })

  it('syncs two replicas through the relay and resolves durable() once acknowledged', async () => {
    const relay = memoryRelay()
    const a = replica(relay)
    const b = replica(relay)
    const docA = await a.open('shared')
    const docB = await b.open('shared')
    await Promise.all([a.doc('shared').synced(), b.doc('shared').synced()])
    docA.getText('t').insert(0, 'hello')
    await a.doc('shared').durable()
    expect(a.doc('shared').pending).toBe(0)
    const stored = await relay.store.load(parseDocId('shared'))
    expect(stored).not.toBeNull()
    await textIs(docB, 'hello')
  })

  it('converges after both replicas edited while the relay was down', async () => {
    const relay = memoryRelay()
    relay.down()
    const a = replica(relay)
    const b = replica(relay)
    const docA = await a.open('offline')
    const docB = await b.open('offline')
    docA.getText('t').insert(0, 'A')
    docB.getText('t').insert(0, 'B')
    docA.getText('t').delete(0, 1)
    docA.getText('t').insert(0, 'a')
    await a.doc('offline').saved()
    expect(a.doc('offline').pending).toBe(3)
    relay.up()
    await Promise.all([a.doc('offline').durable(), b.doc('offline').durable()])
    expect(a.doc('offline').pending).toBe(0)
    expect(b.doc('offline').pending).toBe(0)
    await Promise.all([a.doc('offline').synced(), b.doc('offline').synced()])
    await textIs(docA, textOf(docB))
    expect(textOf(docA)).toHaveLength(2)
  })

  it('keeps unacknowledged changes across a restart and uploads them when the relay returns', async () => {
    const relay = memoryRelay()
    relay.down()
    const store = new MemoryStore()
    const first = new Replica({ store, relays: ['memory://relay'], connect: relay.connect, minReconnectDelayMs: 1 })
    ;(await first.open('restart')).getText('t').insert(0, 'unacked')
    await first.close()
    const second = replica(relay, store)
    await second.open('restart')
    expect(second.doc('restart').pending).toBe(1)
    relay.up()
    await second.doc('restart').durable()
    expect(second.doc('restart').pending).toBe(0)
    const reader = replica(relay)
    const doc = await reader.open('restart')
    await reader.doc('restart').synced()
    expect(textOf(doc)).toBe('unacked')
  })

  it('re-sends what was not acknowledged when the connection drops', async () => {
    const relay = memoryRelay()
    const a = replica(relay)
    const doc = await a.open('drop')
    await a.doc('drop').synced()
    let dropping = true
    relay.policy = (message, deliver) => { if (!dropping) queueMicrotask(deliver) }
    doc.getText('t').insert(0, 'lost in transit')
    await a.doc('drop').saved()
    expect(a.doc('drop').pending).toBe(1)
    dropping = false
    relay.cut()
    await a.doc('drop').durable()
    const stored = (await relay.store.load(parseDocId('drop')))!
    const check = new Y.Doc()
    for (const u of [stored.snapshot, ...stored.updates]) if (u !== null) Y.applyUpdate(check, u)
    expect(textOf(check)).toBe('lost in transit')
  })

  it('reports relay status changes', async () => {
    const relay = memoryRelay()
    const a = replica(relay)
    const statuses: string[] = []
    a.on('status', event => statuses.push(event.status))
    await a.open('s')
    await a.doc('s').synced()
    relay.down()
    await until('offline status', cb => { a.on('status', cb); return () => a.off('status', cb) }, () => statuses.includes('offline'))
    relay.up()
    await until('online again', cb => { a.on('status', cb); return () => a.off('status', cb) }, () => statuses.lastIndexOf('online') > statuses.indexOf('offline'))
  })

  it('shares awareness between replicas and drops it when one leaves', async () => {
    const relay = memoryRelay()
    const a = replica(relay)
    const b = replica(relay)
    await Promise.all([a.open('room'), b.open('room')])
    await Promise.all([a.doc('room').synced(), b.doc('room').synced()])
    a.doc('room').awareness.setLocalStateField('user', 'ann')
    const aId = a.doc('room').awareness.clientID
    const bAwareness = b.doc('room').awareness
    const changes = (cb: () => void): () => void => { bAwareness.on('change', cb); return () => bAwareness.off('change', cb) }
    await until('b to see ann', changes, () => (bAwareness.getStates().get(aId) as { user?: string } | undefined)?.user === 'ann')
    await a.close()
    await until('ann to leave', changes, () => !bAwareness.getStates().has(aId))
  })

  it('lists and deletes local documents', async () => {
    const r = replica(null)
    await r.open('notes/1')
    await r.open('notes/2')
    ;(await r.open('todo/1')).getText('t').insert(0, 'x')
    ;(await r.open('notes/1')).getText('t').insert(0, 'y')
    ;(await r.open('notes/2')).getText('t').insert(0, 'z')
    expect(await r.list('notes/')).toEqual(['notes/1', 'notes/2'])
    const deleted = r.doc('notes/1')
    await r.delete('notes/1')
    expect(await r.list()).toEqual(['notes/2', 'todo/1'])
    // Deleting closed it: opening it again gives a new handle, on an empty document.
    expect(r.doc('notes/1')).not.toBe(deleted)
    expect(textOf(await r.open('notes/1'))).toBe('')
  })

})

describe.each([
  ['MemoryStore', () => new MemoryStore()],
  ['SqliteStore', () => new SqliteStore(join(dir, `grow-${Math.random()}.db`))],
  ['IndexedDbStore', () => new IndexedDbStore({ name: `grow-${Math.random()}` })]
] as Array<[string, () => DocStore]>)('%s under a replica', (_name, makeStore) => {
  it('does not grow when a document is opened ten times without edits', async () => {
    const store = makeStore()
    const first = new Replica({ store: unclosable(store) })
    ;(await first.open('stable')).getText('t').insert(0, 'content')
    await first.close()
    const before = JSON.stringify(await store.load(parseDocId('stable')))
    for (let i = 0; i < 10; i++) {
      const r = new Replica({ store: unclosable(store) })
      await r.open('stable')
      await r.close()
    }
    expect(JSON.stringify(await store.load(parseDocId('stable')))).toBe(before)
    await store.close()
  })
})

/** The same store, shared by several replicas in turn: closing a replica leaves it open. */
function unclosable (store: DocStore): DocStore {
  return new Proxy(store, { get: (target, key) => key === 'close' ? async () => {} : Reflect.get(target, key, target) })
}
