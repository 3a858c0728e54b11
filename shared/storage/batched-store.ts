/**
 * Group commit for stores: writes queue up and are committed together, as one atomic
 * batch, on the next turn of the event loop (or at once by {@link BatchedStore.flush}).
 * Each write's promise settles with its batch. Batches commit in order, so a store that
 * commits them in order gives every reader the writes made before its read.
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

interface QueuedWrite {
  write: StoreWrite
  resolve: () => void
  reject: (error: Error) => void
}

/** Base of the stores that commit writes in batches; see the module comment. */
export abstract class BatchedStore implements DocStore {
  private queue: QueuedWrite[] = []
  private scheduled = false
  private lastCommit: Promise<void> = Promise.resolve()
  private closed = false

  abstract load (docId: DocId): Promise<StoredDoc | null>
  abstract list (prefix?: string): Promise<DocId[]>

  /** Commits `writes`, in order, atomically; throws or rejects to fail them all. */
  protected abstract commitBatch (writes: StoreWrite[]): void | Promise<void>

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

  /** Starts committing everything queued now (synchronously, for a synchronous store). */
  flush (): void {
    this.scheduled = false
    if (this.queue.length === 0) return
    const batch = this.queue
    this.queue = []
    const settle = (error?: unknown): void => {
      for (const queued of batch) {
        if (error === undefined) queued.resolve()
        else queued.reject(error as Error)
      }
    }
    let result: void | Promise<void>
    try {
      result = this.commitBatch(batch.map(queued => queued.write))
    } catch (error) {
      settle(error)
      return
    }
    if (result instanceof Promise) this.lastCommit = result.then(() => settle(), settle)
    else settle()
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.flush()
    this.closed = true
    await this.lastCommit
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
