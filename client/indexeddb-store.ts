/**
 * A {@link DocStore} in IndexedDB (through `idb`, a 1 kB promise wrapper), with the same
 * model as the SQLite store: per document a snapshot, metadata and an append-only update
 * log. Writes made together are committed together in one `strict`-durability
 * transaction (group commit); each write's promise resolves once that transaction has
 * completed. Opening a document writes nothing, so the database does not grow on reloads.
 */
import { openDB, type DBSchema, type IDBPDatabase, type IDBPTransaction } from 'idb'
import type { DocId } from '../shared/doc-id.js'
import type { DocStore, StoredDoc } from '../shared/store.js'

interface PetalSchema extends DBSchema {
  docs: { key: string, value: { snapshot: Uint8Array | null, meta: Uint8Array | null } }
  updates: { key: number, value: { doc: string, data: Uint8Array }, indexes: { byDoc: string } }
}

type Write =
  | { kind: 'append', docId: DocId, data: Uint8Array }
  | { kind: 'compact', docId: DocId, data: Uint8Array }
  | { kind: 'meta', docId: DocId, data: Uint8Array }
  | { kind: 'delete', docId: DocId }

interface QueuedWrite {
  write: Write
  resolve: () => void
  reject: (error: Error) => void
}

type WriteTx = IDBPTransaction<PetalSchema, ['docs', 'updates'], 'readwrite'>

/** Options of {@link IndexedDbStore}. */
export interface IndexedDbStoreOptions {
  /** IndexedDB database name. Default `petaldb`. */
  name?: string
}

/** Durable document storage in IndexedDB; see the module comment. */
export class IndexedDbStore implements DocStore {
  private readonly db: Promise<IDBPDatabase<PetalSchema>>
  private queue: QueuedWrite[] = []
  private flushScheduled = false
  private lastCommit: Promise<void> = Promise.resolve()
  private closed = false

  constructor (options: IndexedDbStoreOptions = {}) {
    this.db = openDB<PetalSchema>(options.name ?? 'petaldb', 1, {
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

  append (docId: DocId, data: Uint8Array): Promise<void> {
    return this.enqueue({ kind: 'append', docId, data })
  }

  compact (docId: DocId, data: Uint8Array): Promise<void> {
    return this.enqueue({ kind: 'compact', docId, data })
  }

  setMeta (docId: DocId, data: Uint8Array): Promise<void> {
    return this.enqueue({ kind: 'meta', docId, data })
  }

  delete (docId: DocId): Promise<void> {
    return this.enqueue({ kind: 'delete', docId })
  }

  async list (prefix = ''): Promise<DocId[]> {
    this.flush()
    const db = await this.db
    // Document ids are ASCII, so every id with the prefix sorts below prefix + U+FFFF.
    const range = prefix === '' ? undefined : IDBKeyRange.bound(prefix, prefix + '\uffff')
    return await db.getAllKeys('docs', range) as DocId[]
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.flush()
    this.closed = true
    await this.lastCommit.catch(() => {})
    ;(await this.db).close()
  }

  private enqueue (write: Write): Promise<void> {
    if (this.closed) return Promise.reject(new Error('IndexedDbStore is closed'))
    return new Promise((resolve, reject) => {
      this.queue.push({ write, resolve, reject })
      if (!this.flushScheduled) {
        this.flushScheduled = true
        setTimeout(() => this.flush(), 0)
      }
    })
  }

  /** Starts one transaction for everything queued; transactions run in the order they start. */
  private flush (): void {
    this.flushScheduled = false
    if (this.queue.length === 0) return
    const batch = this.queue
    this.queue = []
    this.lastCommit = this.commit(batch)
  }

  private async commit (batch: QueuedWrite[]): Promise<void> {
    try {
      const db = await this.db
      const tx = db.transaction(['docs', 'updates'], 'readwrite', { durability: 'strict' })
      for (const { write } of batch) await apply(tx, write)
      await tx.done
    } catch (error) {
      for (const queued of batch) queued.reject(error as Error)
      return
    }
    for (const queued of batch) queued.resolve()
  }
}

async function apply (tx: WriteTx, write: Write): Promise<void> {
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
