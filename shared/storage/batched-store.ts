/**
 * Group commit for stores: writes queue up and are committed together, as one atomic
 * batch, on the next turn of the event loop (or at once by {@link BatchedStore.flush}).
 * Each write's promise settles with its batch. Batches commit in order: a store whose
 * commit is asynchronous (a database server) starts the next batch only once the previous
 * one has returned, so writes that arrive meanwhile accumulate into it, unless the storage
 * orders overlapping transactions itself (IndexedDB). A store that commits in order thus
 * gives every reader the writes made before its read.
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
  /** The asynchronous commit under way, if any: the next batch waits for it. */
  private committing: Promise<void> | null = null
  /** The latest pipelined commit. */
  private last: Promise<void> = Promise.resolve()
  private closed = false
  /**
   * Whether a batch may start before the previous one has committed, because the storage
   * runs transactions in the order they start (IndexedDB). Default false: one at a time.
   */
  protected readonly pipelined: boolean = false

  abstract load (docId: DocId): Promise<StoredDoc | null>
  abstract list (prefix?: string): Promise<DocId[]>

  /** Commits `writes`, in order, atomically; throws or rejects to fail them all. */
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
   * Starts committing everything queued now (synchronously, for a synchronous store);
   * while an asynchronous commit is under way, what is queued waits for it and goes next.
   */
  flush (): void {
    this.scheduled = false
    if (this.queue.length === 0 || this.committing !== null) return
    const batch = this.queue
    this.queue = []
    const settle = (error: unknown, refused?: BatchOutcome): void => {
      for (const queued of batch) {
        const alone = refused?.get(queued.write)
        if (error !== undefined) queued.reject(error as Error)
        else if (alone !== undefined) queued.reject(alone)
        else queued.resolve()
      }
    }
    let result: BatchOutcome | Promise<BatchOutcome>
    try {
      result = this.commitBatch(batch.map(queued => queued.write))
    } catch (error) {
      settle(error)
      return
    }
    if (!(result instanceof Promise)) return settle(undefined, result)
    const settled = result.then(refused => settle(undefined, refused), (error: unknown) => settle(error ?? new Error(`${this.description}: commit failed`)))
    if (this.pipelined) {
      this.last = settled
      return
    }
    this.committing = settled.finally(() => {
      this.committing = null
      this.flush()
    })
  }

  /** Resolves once every write queued before the call has settled (committed or failed). */
  protected async drain (): Promise<void> {
    while (this.queue.length > 0 || this.committing !== null) {
      this.flush()
      await this.committing
    }
    await this.last
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.drain()
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
