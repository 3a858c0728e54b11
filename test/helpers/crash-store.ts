/**
 * A store for simulated crashes: writes queue up and are committed to a `Disk` together
 * (as a real store's group commit does), on the next turn or after `commitDelay()` ms (an
 * fsync takes time); `crash()` drops what was not committed yet. A new store over the same
 * disk is the restarted process.
 */
import type { DocId } from '../../shared/wire/doc-id.js'
import type { DocStore, StoredDoc } from '../../shared/storage/store.js'
import { nextTurn } from '../../shared/turn.js'

/** What survives a crash: committed documents. */
export type Disk = Map<DocId, StoredDoc>

/** See the module comment. */
export class CrashStore implements DocStore {
  private queue: Array<{ apply: () => void, resolve: () => void, reject: (error: Error) => void }> = []
  private crashed = false

  constructor (readonly disk: Disk, private readonly commitDelay?: () => number) {}

  async load (docId: DocId): Promise<StoredDoc | null> {
    this.fail()
    const doc = this.disk.get(docId)
    return doc === undefined ? null : { snapshot: doc.snapshot, meta: doc.meta, updates: [...doc.updates] }
  }

  append (docId: DocId, update: Uint8Array): Promise<void> {
    return this.enqueue(() => this.entry(docId).updates.push(update))
  }

  compact (docId: DocId, snapshot: Uint8Array): Promise<void> {
    // Writes apply in order: when this one does, the log holds exactly what came before it.
    return this.enqueue(() => {
      const doc = this.entry(docId)
      doc.snapshot = snapshot
      doc.updates = []
    })
  }

  updateMeta (docId: DocId, update: (current: Uint8Array | null) => Uint8Array | null): Promise<void> {
    return this.enqueue(() => {
      const doc = this.entry(docId)
      doc.meta = update(doc.meta)
    })
  }

  async list (prefix = ''): Promise<DocId[]> {
    this.fail()
    return [...this.disk.keys()].filter(id => id.startsWith(prefix)).sort()
  }

  delete (docId: DocId): Promise<void> {
    return this.enqueue(() => { this.disk.delete(docId) })
  }

  async close (): Promise<void> {
    if (!this.crashed) this.commit()
    this.crashed = true
  }

  /** The process dies: what was not committed is lost, and the store takes no more writes. */
  crash (): void {
    this.crashed = true
    const lost = this.queue
    this.queue = []
    for (const write of lost) write.reject(new Error('crashed'))
  }

  private enqueue (apply: () => void): Promise<void> {
    if (this.crashed) return Promise.reject(new Error('the store crashed'))
    return new Promise((resolve, reject) => {
      if (this.queue.push({ apply, resolve, reject }) !== 1) return
      if (this.commitDelay === undefined) nextTurn(() => this.commit())
      else setTimeout(() => this.commit(), this.commitDelay())
    })
  }

  private commit (): void {
    if (this.crashed) return
    const batch = this.queue
    this.queue = []
    for (const write of batch) write.apply()
    for (const write of batch) write.resolve()
  }

  private entry (docId: DocId): StoredDoc {
    let doc = this.disk.get(docId)
    if (doc === undefined) {
      doc = { snapshot: null, updates: [], meta: null }
      this.disk.set(docId, doc)
    }
    return doc
  }

  private fail (): void {
    if (this.crashed) throw new Error('the store crashed')
  }
}
