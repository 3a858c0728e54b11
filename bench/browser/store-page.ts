/**
 * The page of the Chromium store benchmarks (bundled, exposed as `globalThis.bench`): an
 * editing trace typed into a bare Y.Doc, into a Replica on an IndexedDbStore, and into a
 * Y.Doc persisted by y-indexeddb, 100 edits per task as in the Node benchmark; reopening
 * documents; and what the databases hold.
 */
import * as Y from 'yjs'
import { IndexeddbPersistence, storeState } from 'y-indexeddb'
import { Replica } from '../../client/index.js'
import { IndexedDbStore } from '../../client/browser.js'
import type { Patch } from '../traces.js'

const CHUNK = 100

/** Yields to the event loop (a message, which browsers do not throttle as they do nested timers). */
const nextTask = (): Promise<void> => new Promise(resolve => {
  const channel = new MessageChannel()
  channel.port1.onmessage = () => resolve()
  channel.port2.postMessage(null)
})

async function replay (doc: Y.Doc, patches: Patch[]): Promise<void> {
  const text = doc.getText('t')
  for (let i = 0; i < patches.length; i += CHUNK) {
    for (const [pos, deleted, inserted] of patches.slice(i, i + CHUNK)) {
      doc.transact(() => {
        if (deleted > 0) text.delete(pos, deleted)
        if (inserted !== '') text.insert(pos, inserted)
      })
    }
    await nextTask()
  }
}

/** Resolves once every earlier readwrite transaction of `db` on `store` has completed (they run in order). */
function writesDone (db: IDBDatabase, store: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const tx = db.transaction([store], 'readwrite')
    tx.oncomplete = () => resolve()
    tx.onerror = () => reject(tx.error)
  })
}

let patches: Patch[] = []

/** Takes the trace (as JSON, which crosses into the page faster than objects). */
function setTrace (json: string): number {
  patches = JSON.parse(json) as Patch[]
  return patches.length
}

/** The trace on a Y.Doc with an update listener (what any persistence or provider adds); ms. */
async function bare (): Promise<number> {
  const doc = new Y.Doc()
  let bytes = 0
  doc.on('update', (update: Uint8Array) => { bytes += update.length })
  const start = performance.now()
  await replay(doc, patches)
  const ms = performance.now() - start
  if (bytes === 0) throw new Error('no updates')
  return ms
}

/** The trace through a Replica on an IndexedDbStore, until everything is stored (close() resolved). */
async function petal (name: string): Promise<{ ms: number, text: string }> {
  const replica = new Replica({ store: new IndexedDbStore({ name }), tabs: false })
  const handle = replica.doc('paper')
  await handle.whenLoaded()
  const start = performance.now()
  await replay(handle.ydoc, patches)
  const text = handle.ydoc.getText('t').toString()
  await replica.close()
  return { ms: performance.now() - start, text }
}

/**
 * The trace through y-indexeddb, until every update it wrote has committed; then its own
 * compaction (which it runs 1 s after the last update), run at once and awaited.
 */
async function yIndexeddb (name: string): Promise<{ ms: number, text: string }> {
  const doc = new Y.Doc()
  const persistence = new IndexeddbPersistence(name, doc)
  await persistence.whenSynced
  const start = performance.now()
  await replay(doc, patches)
  await writesDone(persistence.db!, 'updates')
  const ms = performance.now() - start
  await compactYIndexeddb(persistence)
  await persistence.destroy()
  return { ms, text: doc.getText('t').toString() }
}

async function compactYIndexeddb (persistence: IndexeddbPersistence): Promise<void> {
  const pending = persistence as unknown as { _storeTimeoutId: ReturnType<typeof setTimeout> | null }
  if (pending._storeTimeoutId === null) return
  clearTimeout(pending._storeTimeoutId)
  pending._storeTimeoutId = null
  await storeState(persistence, false)
  await writesDone(persistence.db!, 'updates')
}

/** Opens document `docId` from IndexedDbStore `name` and closes it again; ms to loaded, and its text. */
async function reopenPetal (name: string, docId = 'paper'): Promise<{ ms: number, text: string }> {
  const replica = new Replica({ store: new IndexedDbStore({ name }), tabs: false })
  const start = performance.now()
  const doc = await replica.open(docId)
  const ms = performance.now() - start
  const text = doc.getText('t').toString()
  await replica.close()
  return { ms, text }
}

/** Opens y-indexeddb database `name` and closes it once what it wrote at load has committed. */
async function reopenYIndexeddb (name: string): Promise<{ ms: number, text: string }> {
  const doc = new Y.Doc()
  const start = performance.now()
  const persistence = new IndexeddbPersistence(name, doc)
  await persistence.whenSynced
  const ms = performance.now() - start
  await writesDone(persistence.db!, 'updates')
  await compactYIndexeddb(persistence)
  await persistence.destroy()
  return { ms, text: doc.getText('t').toString() }
}

/** Entries and bytes (of binary values, also inside objects) in every object store of database `name`. */
async function databaseSize (name: string): Promise<{ entries: number, bytes: number }> {
  const db = await new Promise<IDBDatabase>((resolve, reject) => {
    const request = indexedDB.open(name)
    request.onsuccess = () => resolve(request.result)
    request.onerror = () => reject(request.error)
  })
  const stores = Array.from(db.objectStoreNames)
  const values = await Promise.all(stores.map(store => new Promise<unknown[]>((resolve, reject) => {
    const request = db.transaction([store], 'readonly').objectStore(store).getAll()
    request.onsuccess = () => resolve(request.result)
    request.onerror = () => reject(request.error)
  })))
  db.close()
  const bytesOf = (value: unknown): number => value instanceof Uint8Array
    ? value.byteLength
    : value !== null && typeof value === 'object' ? Object.values(value).reduce<number>((sum, inner) => sum + bytesOf(inner), 0) : 0
  return { entries: values.reduce((sum, all) => sum + all.length, 0), bytes: values.flat().reduce<number>((sum, value) => sum + bytesOf(value), 0) }
}

/** Deletes database `name`. */
function deleteDatabase (name: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const request = indexedDB.deleteDatabase(name)
    request.onsuccess = () => resolve()
    request.onerror = () => reject(request.error)
  })
}

/** What the origin's storage uses on disk, as the browser estimates it. */
async function storageUsage (): Promise<number> {
  return (await navigator.storage.estimate()).usage ?? 0
}

/** Writes `count` small documents through y-indexeddb, one database each (as it stores them). */
async function writeManyYIndexeddb (count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const doc = new Y.Doc()
    const persistence = new IndexeddbPersistence(`docs/${i}`, doc)
    await persistence.whenSynced
    doc.getText('t').insert(0, `document number ${i}`)
    await writesDone(persistence.db!, 'updates')
    await persistence.destroy()
  }
}

/** Opens `count` y-indexeddb documents one after another, then all at once; ms each way. */
async function openManyYIndexeddb (count: number): Promise<{ sequential: number, concurrent: number }> {
  const open = async (i: number): Promise<IndexeddbPersistence> => {
    const persistence = new IndexeddbPersistence(`docs/${i}`, new Y.Doc())
    await persistence.whenSynced
    return persistence
  }
  let start = performance.now()
  const opened: IndexeddbPersistence[] = []
  for (let i = 0; i < count; i++) opened.push(await open(i))
  const sequential = performance.now() - start
  await Promise.all(opened.splice(0).map(persistence => persistence.destroy()))
  start = performance.now()
  opened.push(...await Promise.all(Array.from({ length: count }, (_, i) => open(i))))
  const concurrent = performance.now() - start
  await Promise.all(opened.map(persistence => persistence.destroy()))
  return { sequential, concurrent }
}

/** What the page offers, on `globalThis.bench`. */
export const bench = { setTrace, bare, petal, yIndexeddb, reopenPetal, reopenYIndexeddb, databaseSize, deleteDatabase, storageUsage, writeManyYIndexeddb, openManyYIndexeddb }
Object.assign(globalThis, { bench })
