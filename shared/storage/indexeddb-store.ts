/**
 * A {@link DocStore} in IndexedDB (through `idb`, a 1 kB promise wrapper), with the same
 * model as the SQLite store: per document a snapshot, metadata and an append-only update
 * log. Writes made together are committed together in one `strict`-durability
 * transaction (group commit); each write's promise resolves once that transaction has
 * completed. Opening a document writes nothing, so the database does not grow on reloads.
 */
import { openDB, type DBSchema, type IDBPDatabase, type IDBPTransaction } from 'idb'
import type { DocId } from '../wire/doc-id.js'
import type { StoredDoc } from './store.js'
import { BatchedStore, type StoreWrite } from './batched-store.js'

interface PetalSchema extends DBSchema {
  docs: { key: string, value: { snapshot: Uint8Array | null, meta: Uint8Array | null } }
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
    const [doc, updates] = await Promise.all([
      tx.objectStore('docs').get(docId),
      tx.objectStore('updates').index('byDoc').getAll(docId)
    ])
    if (doc === undefined) return null
    return { snapshot: doc.snapshot, meta: doc.meta, updates: updates.map(update => update.data) }
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
    for (const write of writes) await apply(tx, write)
    await tx.done
  }

  protected async release (): Promise<void> {
    (await this.db).close()
  }
}

async function apply (tx: WriteTx, write: StoreWrite): Promise<void> {
  const docs = tx.objectStore('docs')
  const updates = tx.objectStore('updates')
  const current = await docs.get(write.docId)
  switch (write.kind) {
    case 'append':
      if (current === undefined) await docs.put({ snapshot: null, meta: null }, write.docId)
      await updates.add({ doc: write.docId, data: write.data })
      break
    case 'meta':
      await docs.put({ snapshot: current?.snapshot ?? null, meta: write.data }, write.docId)
      break
    case 'compact':
      // Snapshot first, log second (both in this transaction): the log prefix is what was appended before.
      await docs.put({ snapshot: write.data, meta: current?.meta ?? null }, write.docId)
      await deleteLog(tx, write.docId)
      break
    case 'delete':
      await deleteLog(tx, write.docId)
      await docs.delete(write.docId)
      break
  }
}

async function deleteLog (tx: WriteTx, docId: DocId): Promise<void> {
  const updates = tx.objectStore('updates')
  const keys = await updates.index('byDoc').getAllKeys(docId)
  await Promise.all(keys.map(key => updates.delete(key)))
}
