/**
 * Keeps a Y.Doc and its stored form in step: loads the document from a {@link DocStore}
 * and writes every later update to the store's log, compacting the log into a snapshot
 * when it grows larger than the snapshot. Compaction cost is thus amortised: each byte
 * appended pays for at most one byte of re-encoded snapshot.
 */
import * as Y from 'yjs'
import type { DocId } from './doc-id.js'
import type { DocStore } from './store.js'

/** Thrown when a stored document cannot be loaded; the stored data is left untouched. */
export class DocLoadError extends Error {
  override name = 'DocLoadError'
}

/** Options of {@link PersistedDoc.load}. */
export interface PersistedDocOptions {
  /** The log is never compacted while it holds fewer bytes than this. Default 16 KiB. */
  compactMinBytes?: number
  /** Transaction origin used when applying the stored state, so listeners can skip it. */
  origin?: unknown
}

const DEFAULT_COMPACT_MIN_BYTES = 16 * 1024

/** A Y.Doc bound to its stored log; create one with {@link PersistedDoc.load}. */
export class PersistedDoc {
  private logBytes: number
  private snapshotBytes: number
  private readonly compactMinBytes: number
  private lastWrite: Promise<void> = Promise.resolve()

  private constructor (
    private readonly store: DocStore,
    readonly docId: DocId,
    readonly ydoc: Y.Doc,
    /** The store's metadata for the document as it was at load. */
    readonly loadedMeta: Uint8Array | null,
    stored: { snapshotBytes: number, logBytes: number },
    compactMinBytes: number
  ) {
    this.snapshotBytes = stored.snapshotBytes
    this.logBytes = stored.logBytes
    this.compactMinBytes = compactMinBytes
  }

  /**
   * Applies what `store` holds for `docId` to `ydoc` (which should be empty) and returns
   * the binding. Rejects with {@link DocLoadError} if the stored data does not decode.
   */
  static async load (store: DocStore, docId: DocId, ydoc: Y.Doc, options: PersistedDocOptions = {}): Promise<PersistedDoc> {
    const stored = await store.load(docId)
    const parts = stored === null ? [] : stored.snapshot === null ? stored.updates : [stored.snapshot, ...stored.updates]
    try {
      Y.transact(ydoc, () => {
        for (const part of parts) Y.applyUpdate(ydoc, part)
      }, options.origin ?? null)
    } catch (error) {
      throw new DocLoadError(`stored data of document ${docId} does not decode: ${(error as Error).message}`)
    }
    const persisted = new PersistedDoc(store, docId, ydoc, stored?.meta ?? null, {
      snapshotBytes: stored?.snapshot?.length ?? 0,
      logBytes: stored?.updates.reduce((sum, update) => sum + update.length, 0) ?? 0
    }, options.compactMinBytes ?? DEFAULT_COMPACT_MIN_BYTES)
    if (persisted.shouldCompact()) await persisted.compact()
    return persisted
  }

  /**
   * Appends `update` (already applied to the Y.Doc) to the log, compacting if the log has
   * outgrown the snapshot. Resolves once the update is durable.
   */
  write (update: Uint8Array): Promise<void> {
    this.logBytes += update.length
    let written = this.store.append(this.docId, update)
    if (this.shouldCompact()) {
      // The snapshot encodes the Y.Doc, which already holds every update appended so far,
      // so it may replace the whole log up to this point.
      written = Promise.all([written, this.compact()]).then(() => {})
    }
    // Chained, so that one failed write fails every later settled(): an acknowledgement
    // must never cover an update that did not reach the disk.
    this.lastWrite = Promise.all([this.lastWrite, written]).then(() => {})
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

  /** Bytes currently in the log and in the snapshot. */
  get sizes (): { logBytes: number, snapshotBytes: number } {
    return { logBytes: this.logBytes, snapshotBytes: this.snapshotBytes }
  }

  private shouldCompact (): boolean {
    return this.logBytes > Math.max(this.snapshotBytes, this.compactMinBytes)
  }

  private compact (): Promise<void> {
    let snapshot: Uint8Array
    try {
      snapshot = Y.encodeStateAsUpdate(this.ydoc)
    } catch (error) {
      // Never fail a write over compaction: the log keeps everything; retry on the next write.
      return Promise.resolve()
    }
    this.snapshotBytes = snapshot.length
    this.logBytes = 0
    return this.store.compact(this.docId, snapshot)
  }
}
