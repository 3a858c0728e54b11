/**
 * Group commit for stores: writes queue up and are committed together, as one atomic
 * batch, on the next turn of the event loop (or at once by {@link BatchedStore.flush}).
 * Each write's promise settles with its batch. A store that commits asynchronously
 * (IndexedDB) has one batch in flight at a time: what is written meanwhile waits and goes
 * in the next batch, so a slow commit (a browser's fsync) makes batches larger, not a
 * queue of small transactions longer. Batches commit in order; a read waits for the
 * writes made before it ({@link BatchedStore.written}). A database server's store thus
 * starts its next batch only once the previous COMMIT has returned. A batch may also
 * refuse single writes while the rest of it commits (see {@link BatchOutcome}).
 */
import type { DocId } from '../wire/doc-id.js'
import type { DocStore, StoredDoc } from './store.js'
import { nextTurn } from '../turn.js'

/** One write to a store. */
export type StoreWrite =
  | { kind: 'append', docId: DocId, data: Uint8Array }
  | { kind: 'compact', docId: DocId, data: Uint8Array }
  | { kind: 'meta', docId: DocId, update: (current: Uint8Array | null) => Uint8Array | null }
  | { kind: 'delete', docId: DocId }

/** What one group commit wrote (reported by the stores that take an `onCommit` option). */
export interface CommitInfo {
  /** Updates appended to logs. */
  updates: number
  /** Snapshots written (compactions). */
  compactions: number
  /** Bytes written in updates and snapshots. */
  bytes: number
  /** How long the commit took, in seconds (its fsync included). */
  seconds: number
}

/**
 * What a committed batch may report: writes that were refused alone (their promise
 * rejects with the error) while the rest of the batch committed.
 */
export type BatchOutcome = void | ReadonlyMap<StoreWrite, Error>

interface QueuedWrite {
  write: StoreWrite
  resolve: () => void
  reject: (error: Error) => void
}

/** Base of the stores that commit writes in batches; see the module comment. */
export abstract class BatchedStore implements DocStore {
  private queue: QueuedWrite[] = []
  private scheduled = false
  /** Whether an asynchronous store is committing a batch. */
  private inFlight = false
  /** Batches started, and settled (they settle in order). */
  private started = 0
  private settledBatches = 0
  /** Callers of {@link written}, each waiting for a batch to settle. */
  private waiters: Array<{ batch: number, resolve: () => void }> = []
  private closed = false

  abstract load (docId: DocId): Promise<StoredDoc | null>
  abstract list (prefix?: string): Promise<DocId[]>

  /** Commits `writes`, in order, atomically; throws or rejects to fail them all, or reports writes refused alone. */
  protected abstract commitBatch (writes: StoreWrite[]): BatchOutcome | Promise<BatchOutcome>

  /** Releases the underlying storage, once every batch has committed. */
  protected abstract release (): void | Promise<void>

  /** A name for error messages. */
  protected abstract get description (): string

  append (docId: DocId, data: Uint8Array): Promise<void> {
    return this.enqueue({ kind: 'append', docId, data })
  }

  compact (docId: DocId, data: Uint8Array): Promise<void> {
    return this.enqueue({ kind: 'compact', docId, data })
  }

  updateMeta (docId: DocId, update: (current: Uint8Array | null) => Uint8Array | null): Promise<void> {
    return this.enqueue({ kind: 'meta', docId, update })
  }

  delete (docId: DocId): Promise<void> {
    return this.enqueue({ kind: 'delete', docId })
  }

  /**
   * Starts committing everything queued now (synchronously, for a synchronous store); for
   * an asynchronous store with a batch in flight, once that batch has committed.
   */
  flush (): void {
    this.scheduled = false
    if (this.queue.length === 0 || this.inFlight) return
    const batch = this.queue
    this.queue = []
    this.started++
    const settle = (error?: unknown, refused?: BatchOutcome): void => {
      for (const queued of batch) {
        const alone = refused?.get(queued.write)
        if (error !== undefined) queued.reject(error as Error)
        else if (alone !== undefined) queued.reject(alone)
        else queued.resolve()
      }
      this.settledBatches++
      const ready = this.waiters.filter(waiter => waiter.batch <= this.settledBatches)
      this.waiters = this.waiters.filter(waiter => waiter.batch > this.settledBatches)
      for (const waiter of ready) waiter.resolve()
    }
    let result: BatchOutcome | Promise<BatchOutcome>
    try {
      result = this.commitBatch(batch.map(queued => queued.write))
    } catch (error) {
      settle(error)
      return
    }
    if (!(result instanceof Promise)) return settle(undefined, result)
    this.inFlight = true
    result.then(refused => settle(undefined, refused), (error: unknown) => settle(error ?? new Error(`${this.description}: commit failed`))).then(() => {
      this.inFlight = false
      this.flush() // what was written meanwhile
    })
  }

  /**
   * Resolves once every write made before the call has committed (or failed): at once for
   * a synchronous store; readers of an asynchronous one wait for it.
   */
  protected written (): Promise<void> {
    this.flush()
    const batch = this.started + (this.queue.length > 0 ? 1 : 0)
    if (batch <= this.settledBatches) return Promise.resolve()
    return new Promise(resolve => this.waiters.push({ batch, resolve }))
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.written()
    await this.release()
  }

  private enqueue (write: StoreWrite): Promise<void> {
    if (this.closed) return Promise.reject(new Error(`${this.description} is closed`))
    return new Promise((resolve, reject) => {
      this.queue.push({ write, resolve, reject })
      if (!this.scheduled) {
        this.scheduled = true
        nextTurn(() => this.flush())
      }
    })
  }
}
