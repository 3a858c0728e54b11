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

interface DocRow { snapshot: Uint8Array | null, meta: Uint8Array | null, version?: number }

interface PetalSchema extends DBSchema {
  docs: { key: string, value: DocRow }
  updates: { key: number, value: { doc: string, data: Uint8Array }, indexes: { byDoc: string } }
}

type WriteTx = IDBPTransaction<PetalSchema, ['docs', 'updates'], 'readwrite'>

/** What this store knows of a document's entries: those it may compact away, and the snapshot it saw. */
interface Seen {
  keys: number[]
  version: number
}

/** Options of {@link IndexedDbStore}. */
export interface IndexedDbStoreOptions {
  /** IndexedDB database name. Default `petaldb`. */
  name?: string
}

/** Durable document storage in IndexedDB; see the module comment. */
export class IndexedDbStore extends BatchedStore {
  private readonly db: Promise<IDBPDatabase<PetalSchema>>
  readonly name: string
  private readonly seen = new Map<DocId, Seen>()
  // IndexedDB runs transactions in the order they were created: no need to wait for the last one.
  protected override readonly pipelined = true

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
    // A read transaction created after a write transaction over the same stores sees its writes.
    this.flush()
    const db = await this.db
    const tx = db.transaction(['docs', 'updates'], 'readonly')
    const byDoc = tx.objectStore('updates').index('byDoc')
    const [doc, keys, updates] = await Promise.all([tx.objectStore('docs').get(docId), byDoc.getAllKeys(docId), byDoc.getAll(docId)])
    if (doc === undefined && updates.length === 0) return null
    this.seen.set(docId, { keys, version: doc?.version ?? 0 })
    return { snapshot: doc?.snapshot ?? null, meta: doc?.meta ?? null, updates: updates.map(update => update.data) }
  }

  async list (prefix = ''): Promise<DocId[]> {
    this.flush()
    const db = await this.db
    // Document ids are ASCII, so every id with the prefix sorts below prefix + U+FFFF.
    const range = prefix === '' ? undefined : IDBKeyRange.bound(prefix, prefix + '\uffff')
    return await db.getAllKeys('docs', range) as DocId[]
  }

  protected get description (): string {
    return `IndexedDbStore ${this.name}`
  }

  /** One strict-durability transaction for the batch; transactions run in the order they start. */
  protected async commitBatch (writes: StoreWrite[]): Promise<void> {
    const db = await this.db
    const tx = db.transaction(['docs', 'updates'], 'readwrite', { durability: 'strict' })
    // What the batch teaches about entries, kept only once it has committed (null: forget the document).
    const seen = new Map<DocId, Seen | null>()
    const seenOf = (docId: DocId): Seen => {
      let entry = seen.get(docId)
      if (entry === undefined || entry === null) {
        // After a delete in this batch, the document starts afresh.
        const current = entry === null ? undefined : this.seen.get(docId)
        entry = { keys: [...current?.keys ?? []], version: current?.version ?? 0 }
        seen.set(docId, entry)
      }
      return entry
    }
    for (const write of writes) await apply(tx, write, seenOf, seen)
    await tx.done
    for (const [docId, entry] of seen) {
      if (entry === null) this.seen.delete(docId)
      else this.seen.set(docId, entry)
    }
  }

  protected async release (): Promise<void> {
    (await this.db).close()
  }
}

async function apply (tx: WriteTx, write: StoreWrite, seenOf: (docId: DocId) => Seen, seen: Map<DocId, Seen | null>): Promise<void> {
  const docs = tx.objectStore('docs')
  const updates = tx.objectStore('updates')
  const current = await docs.get(write.docId)
  switch (write.kind) {
    case 'append':
      if (current === undefined) await docs.put({ snapshot: null, meta: null, version: 0 }, write.docId)
      seenOf(write.docId).keys.push(await updates.add({ doc: write.docId, data: write.data }))
      break
    case 'meta':
      await docs.put({ snapshot: current?.snapshot ?? null, meta: write.update(current?.meta ?? null), version: current?.version ?? 0 }, write.docId)
      break
    case 'compact': {
      const entry = seenOf(write.docId)
      // A snapshot another tab wrote since this one last saw the document is kept, as a log entry.
      if (current?.snapshot != null && (current.version ?? 0) !== entry.version) await updates.add({ doc: write.docId, data: current.snapshot })
      entry.version = (current?.version ?? 0) + 1
      // Snapshot first, log second (both in this transaction).
      await docs.put({ snapshot: write.data, meta: current?.meta ?? null, version: entry.version }, write.docId)
      await Promise.all(entry.keys.map(key => updates.delete(key)))
      entry.keys = []
      break
    }
    case 'delete': {
      const keys = await updates.index('byDoc').getAllKeys(write.docId)
      await Promise.all(keys.map(key => updates.delete(key)))
      await docs.delete(write.docId)
      seen.set(write.docId, null)
      break
    }
  }
}
