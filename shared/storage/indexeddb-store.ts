/**
 * A {@link DocStore} in IndexedDB (through `idb`, a 1 kB promise wrapper), with the same
 * model as the SQLite store: per document a snapshot, metadata and an append-only update
 * log. Writes made together are committed together in one `strict`-durability
 * transaction (group commit); each write's promise resolves once that transaction has
 * completed. Opening a document writes nothing, so the database does not grow on reloads.
 *
 * Tabs of an origin share the database: each store tracks the log entries it loaded or
 * appended and the snapshot version it last saw, and a compaction removes only those
 * entries and keeps, as a log entry, a snapshot another tab wrote meanwhile. So no tab's
 * compaction drops another tab's updates (a race y-indexeddb has).
 */
import { openDB, type DBSchema, type IDBPDatabase, type IDBPTransaction } from 'idb'
import type { DocId } from '../wire/doc-id.js'
import type { StoredDoc } from './store.js'
import { BatchedStore, type StoreWrite } from './batched-store.js'
import { SeenRows, type SeenBatch } from './seen-rows.js'

interface DocRow { snapshot: Uint8Array | null, meta: Uint8Array | null, version?: number }

interface PetalSchema extends DBSchema {
  docs: { key: string, value: DocRow }
  updates: { key: number, value: { doc: string, data: Uint8Array }, indexes: { byDoc: string } }
}

type WriteTx = IDBPTransaction<PetalSchema, ['docs', 'updates'], 'readwrite'>

/** Options of {@link IndexedDbStore}. */
export interface IndexedDbStoreOptions {
  /** IndexedDB database name. Default `petaldb`. */
  name?: string
}

/** Durable document storage in IndexedDB; see the module comment. */
export class IndexedDbStore extends BatchedStore {
  private readonly db: Promise<IDBPDatabase<PetalSchema>>
  readonly name: string
  /** The log entries' keys and snapshot version (0: none) this store knows of each document; see seen-rows.ts. */
  private readonly seen = new SeenRows<number, number>(0)

  constructor (options: IndexedDbStoreOptions = {}) {
    super()
    this.name = options.name ?? 'petaldb'
    this.db = openDB<PetalSchema>(this.name, 1, {
      upgrade (db) {
        db.createObjectStore('docs')
        db.createObjectStore('updates', { autoIncrement: true }).createIndex('byDoc', 'doc')
      }
    })
  }

  async load (docId: DocId): Promise<StoredDoc | null> {
    await this.written()
    const db = await this.db
    const tx = db.transaction(['docs', 'updates'], 'readonly')
    const byDoc = tx.objectStore('updates').index('byDoc')
    const [doc, keys, updates] = await Promise.all([tx.objectStore('docs').get(docId), byDoc.getAllKeys(docId), byDoc.getAll(docId)])
    if (doc === undefined && updates.length === 0) return null
    this.seen.loaded(docId, keys, doc?.version ?? 0)
    return { snapshot: doc?.snapshot ?? null, meta: doc?.meta ?? null, updates: updates.map(update => update.data) }
  }

  async list (prefix = ''): Promise<DocId[]> {
    await this.written()
    const db = await this.db
    // Document ids are ASCII, so every id with the prefix sorts below prefix + U+FFFF.
    const range = prefix === '' ? undefined : IDBKeyRange.bound(prefix, prefix + '\uffff')
    return await db.getAllKeys('docs', range) as DocId[]
  }

  protected get description (): string {
    return `IndexedDbStore ${this.name}`
  }

  /** One strict-durability transaction for the batch (one at a time: see `BatchedStore`). */
  protected async commitBatch (writes: StoreWrite[]): Promise<void> {
    const db = await this.db
    const tx = db.transaction(['docs', 'updates'], 'readwrite', { durability: 'strict' })
    // What the batch teaches about entries, kept only once it has committed.
    const seen = this.seen.batch()
    const byDoc = new Map<DocId, StoreWrite[]>()
    for (const write of writes) byDoc.set(write.docId, [...byDoc.get(write.docId) ?? [], write])
    await Promise.all([...byDoc].map(([docId, docWrites]) => commitDoc(tx, docId, docWrites, seen)))
    await tx.done
    this.seen.commit(seen)
  }

  protected async release (): Promise<void> {
    (await this.db).close()
  }
}

/**
 * Applies one document's writes of a batch, in order: its row is read once and written
 * once, and requests are not awaited one by one (a transaction runs them in order), so a
 * batch costs a few round trips to the database, not a few per write.
 */
async function commitDoc (tx: WriteTx, docId: DocId, writes: StoreWrite[], seen: SeenBatch<number, number>): Promise<void> {
  const docs = tx.objectStore('docs')
  const updates = tx.objectStore('updates')
  const requests: Array<Promise<unknown>> = []
  const request = <T>(pending: Promise<T>): Promise<T> => {
    pending.catch(() => {}) // failures reach the caller through Promise.all and tx.done
    requests.push(pending)
    return pending
  }
  let row: DocRow | undefined = await docs.get(docId)
  let rowChanged = false
  for (const write of writes) {
    switch (write.kind) {
      case 'append': {
        if (row === undefined) row = { snapshot: null, meta: null, version: 0 }
        rowChanged = true
        const entry = seen.of(docId)
        request(updates.add({ doc: docId, data: write.data })).then(key => entry.append(key), () => {})
        break
      }
      case 'meta':
        row = { snapshot: row?.snapshot ?? null, meta: write.update(row?.meta ?? null), version: row?.version ?? 0 }
        rowChanged = true
        break
      case 'compact': {
        await Promise.all(requests) // the keys of the entries appended so far
        const entry = seen.of(docId)
        // A snapshot another tab wrote since this one last saw the document is kept, as a log entry.
        if (row?.snapshot != null && (row.version ?? 0) !== entry.version) request(updates.add({ doc: docId, data: row.snapshot }))
        const version = (row?.version ?? 0) + 1
        // Snapshot first, log second (both in this transaction).
        row = { snapshot: write.data, meta: row?.meta ?? null, version }
        request(docs.put(row, docId))
        rowChanged = false
        for (const key of entry.all) request(updates.delete(key))
        entry.compacted(version)
        break
      }
      case 'delete': {
        const keys = await request(updates.index('byDoc').getAllKeys(docId))
        for (const key of keys) request(updates.delete(key))
        request(docs.delete(docId))
        row = undefined
        rowChanged = false
        seen.deleted(docId)
        break
      }
    }
  }
  if (rowChanged && row !== undefined) request(docs.put(row, docId))
  await Promise.all(requests)
}
