/**
 * The write side of a stored document: appends each update to a {@link DocStore}'s log
 * and, when the log grows larger than the snapshot, replaces it by a fresh snapshot.
 * Compaction cost is thus amortised: each byte appended pays for at most one byte of
 * re-encoded snapshot. What the snapshot holds is the owner's business (a Y.Doc's state
 * on a replica, the merged stored updates on a relay).
 */
import type { DocId } from '../wire/doc-id.js'
import type { DocStore, StoredDoc } from './store.js'

export const DEFAULT_COMPACT_MIN_BYTES = 16 * 1024

/** Options of {@link DocLog}. */
export interface DocLogOptions {
  /** The log is never compacted while it holds fewer bytes than this. Default 16 KiB. */
  compactMinBytes?: number
}

/** What `settled()` is while no write is in flight and none failed. */
const SETTLED = Promise.resolve()

/** What a {@link DocLog} compacts into: its owner, which knows what the document holds. */
export interface Snapshotter {
  /** Encodes everything written so far; may throw (see {@link DocLog}). */
  snapshot(): Uint8Array
}

/** See the module comment. */
export class DocLog {
  private logBytes: number
  private snapshotBytes: number
  private readonly compactMinBytes: number
  /** After a failed compaction, the log size at which to try again (0: none failed). */
  private retryAtBytes = 0
  private lastWrite: Promise<void> = SETTLED
  private inFlight = 0
  private failed = false

  /**
   * `stored` is what the store held at load; `owner.snapshot()` encodes everything written
   * so far (it may throw: the log then keeps everything, and compaction is retried once the
   * log has grown by half, so that a snapshot that keeps failing does not cost one encoding
   * per write). An owner object rather than a callback: a relay keeps thousands of logs open.
   */
  constructor (
    private readonly store: DocStore,
    readonly docId: DocId,
    stored: StoredDoc | null,
    private readonly owner: Snapshotter,
    options: DocLogOptions = {}
  ) {
    this.snapshotBytes = stored?.snapshot?.length ?? 0
    this.logBytes = stored?.updates.reduce((sum, update) => sum + update.length, 0) ?? 0
    this.compactMinBytes = options.compactMinBytes ?? DEFAULT_COMPACT_MIN_BYTES
  }

  /** Appends `update`, compacting if the log has outgrown the snapshot. Resolves once it is durable. */
  write (update: Uint8Array): Promise<void> {
    this.logBytes += update.length
    let written = this.store.append(this.docId, update)
    // The snapshot covers every update appended so far, so it may replace the whole log.
    if (this.compactionDue()) written = Promise.all([written, this.compact()]).then(() => {})
    // Chained, so that one failed write fails every later settled(): an acknowledgement
    // must never cover an update that did not reach the disk.
    this.inFlight++
    written.then(() => {
      // Once every write succeeded, one shared promise stands for them: the chain is let go.
      if (--this.inFlight === 0 && !this.failed) this.lastWrite = SETTLED
    }, () => {
      this.failed = true
      this.inFlight--
    })
    this.lastWrite = this.lastWrite.then(() => written)
    this.lastWrite.catch(() => {}) // observed by callers of settled(); not an unhandled rejection
    return written
  }

  /**
   * Resolves once every write made so far is durable (stores commit in order); rejects,
   * from then on, once any write has failed.
   */
  settled (): Promise<void> {
    return this.lastWrite
  }

  /** Whether no write is in flight: everything written so far has settled. */
  get idle (): boolean {
    return this.inFlight === 0
  }

  /** Bytes currently in the log and in the snapshot. */
  get sizes (): { logBytes: number, snapshotBytes: number } {
    return { logBytes: this.logBytes, snapshotBytes: this.snapshotBytes }
  }

  /** Compacts now if the log has outgrown the snapshot (a document may load that way). */
  compactIfDue (): Promise<void> {
    return this.compactionDue() ? this.compact() : Promise.resolve()
  }

  private compactionDue (): boolean {
    return this.logBytes > Math.max(this.snapshotBytes, this.compactMinBytes, this.retryAtBytes)
  }

  private compact (): Promise<void> {
    let snapshot: Uint8Array
    try {
      snapshot = this.owner.snapshot()
    } catch {
      // Never fail a write over compaction: the log keeps everything.
      this.retryAtBytes = this.logBytes * 1.5
      return Promise.resolve()
    }
    this.retryAtBytes = 0
    this.snapshotBytes = snapshot.length
    this.logBytes = 0
    return this.store.compact(this.docId, snapshot)
  }
}
