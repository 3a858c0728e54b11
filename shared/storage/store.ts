/**
 * The storage interface shared by relays and replicas. A store keeps, per document, a
 * compacted snapshot and an append-only log of the updates that came after it. It knows
 * nothing about Yjs: deciding when to compact is the job of `DocLog`, and what a snapshot
 * holds is its owner's (`PersistedDoc` on a replica, `StoredDocument` on a relay). Every
 * store passes the conformance suite in `test/conformance/store-conformance.ts`.
 */
import type { DocId } from '../wire/doc-id.js'

/** What a store holds for one document. */
export interface StoredDoc {
  /** The latest snapshot, or `null` if the document was never compacted. */
  snapshot: Uint8Array | null
  /** Updates appended after the snapshot, oldest first. */
  updates: Uint8Array[]
  /** The document's metadata (see {@link DocStore.updateMeta}), or `null`. */
  meta: Uint8Array | null
}

/** Durable per-document storage of a snapshot and an update log. */
export interface DocStore {
  /** Names the storage itself (a database), where other processes or tabs may open it too. */
  readonly name?: string
  /** Everything stored for `docId`, or `null` if nothing is. Sees every write made before the call. */
  load(docId: DocId): Promise<StoredDoc | null>
  /**
   * Appends an update to the document's log. Resolves once it is durable; writes that
   * arrive together may be committed together.
   */
  append(docId: DocId, update: Uint8Array): Promise<void>
  /**
   * Replaces the snapshot, and every update this store loaded or appended before this call,
   * by `snapshot`, in one atomic step. Updates appended after the call stay in the log, and
   * so do updates other writers of the same storage appended (two tabs on one IndexedDB
   * database, two processes on one SQLite file); a snapshot another writer wrote since this
   * store last read or wrote one is kept as an update, never overwritten.
   */
  compact(docId: DocId, snapshot: Uint8Array): Promise<void>
  /**
   * Replaces the document's metadata (a small opaque value kept beside the log: a
   * replica keeps its acknowledgement counters there) by `update(current)`, atomically
   * with respect to every other writer of the storage. Ordered and committed like the
   * other writes, so a metadata update made with an append lands in the same commit.
   * `update` must be a pure, synchronous function; null removes the metadata.
   */
  updateMeta(docId: DocId, update: (current: Uint8Array | null) => Uint8Array | null): Promise<void>
  /** Ids of the stored documents that start with `prefix` (all if omitted), sorted. */
  list(prefix?: string): Promise<DocId[]>
  /** Removes everything stored for `docId`. */
  delete(docId: DocId): Promise<void>
  /**
   * Optional: the stored size of `docId` (snapshot and log) and its metadata, without
   * reading the document; `null` if nothing is stored. Listings use {@link load} without it.
   */
  stat?(docId: DocId): Promise<{ bytes: number, meta: Uint8Array | null } | null>
  /**
   * Optional: makes what was deleted so far unrecoverable from the storage's files (freed
   * pages overwritten, write-ahead log truncated), once every queued write has committed.
   * Resolves whether that is done; if not (another reader holds old pages), the store keeps
   * trying for a while, but only a later call that resolves true says it is done.
   */
  erase?(): Promise<boolean>
  /**
   * Optional: the documents that hold metadata and nothing else (no snapshot, no log), with
   * their metadata, without reading any other document's content: a relay's tombstones.
   */
  metaOnly?(): Promise<Array<{ docId: DocId, meta: Uint8Array }>>
  /** Commits what is pending and releases the store. */
  close(): Promise<void>
}
