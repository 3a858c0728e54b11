/**
 * What a store that shares its storage with other writers (tabs on one IndexedDB database,
 * processes on one SQLite file, relays on one PostgreSQL database) knows of each document:
 * the log rows it loaded or appended, and the snapshot version it last saw. A compaction
 * deletes exactly those rows (never another writer's) and keeps, as a log row, a snapshot
 * whose version moved since. Written once here for every such store.
 *
 * A batch learns into a {@link SeenBatch} of its own, which {@link SeenRows.commit} keeps
 * only once the batch's transaction has committed: what a rolled-back batch would have
 * taught is dropped with it.
 */
import type { DocId } from '../wire/doc-id.js'

/** What is known of one document: its log rows (a row id or key) and its snapshot version. */
export interface Seen<Row, Version> {
  /** Log rows loaded or appended by this store, in the order they were. */
  readonly rows: readonly Row[]
  /** The snapshot version last loaded or written (the tracker's `none`: no snapshot). */
  readonly version: Version
}

/** What a batch being committed knows of one document; see {@link SeenBatch.of}. */
export class BatchSeen<Row, Version> {
  /** Rows appended by the batch; `rows` themselves are shared with the committed entry and never written to. */
  readonly added: Row[] = []

  constructor (
    /** The rows known before the batch (none once the batch compacted the document). */
    public rows: readonly Row[],
    /** The snapshot version known. */
    public version: Version
  ) {}

  /** Every row known, in order: those a compaction deletes. */
  get all (): readonly Row[] {
    return this.added.length === 0 ? this.rows : this.rows.concat(this.added)
  }

  /** Whether nothing is known of the document: no row, no snapshot seen. */
  isBlank (none: Version): boolean {
    return this.rows.length === 0 && this.added.length === 0 && this.version === none
  }

  /** The batch appended `row`. */
  append (row: Row): void {
    this.added.push(row)
  }

  /** The batch compacted the document: every known row is gone, and its snapshot is `version`. */
  compacted (version: Version): void {
    this.rows = []
    this.added.length = 0
    this.version = version
  }
}

/** What one batch learns; applied by {@link SeenRows.commit} once the batch has committed. */
export class SeenBatch<Row, Version> {
  /** By document: what the batch knows, or null when it deleted the document (forget it). */
  readonly entries = new Map<DocId, BatchSeen<Row, Version> | null>()

  constructor (private readonly committed: SeenRows<Row, Version>) {}

  /** What the batch knows of `docId`, starting from what was committed (from nothing after a delete in this batch). */
  of (docId: DocId): BatchSeen<Row, Version> {
    let entry = this.entries.get(docId)
    if (entry === undefined || entry === null) {
      const current = entry === null ? undefined : this.committed.get(docId)
      entry = new BatchSeen<Row, Version>(current?.rows ?? [], current?.version ?? this.committed.none)
      this.entries.set(docId, entry)
    }
    return entry
  }

  /** The batch deleted `docId`: what was known of it is forgotten. */
  deleted (docId: DocId): void {
    this.entries.set(docId, null)
  }
}

/** See the module comment. `none` is the version of a document with no snapshot. */
export class SeenRows<Row, Version> {
  private readonly docs = new Map<DocId, Seen<Row, Version>>()

  constructor (readonly none: Version) {}

  /** What is known of `docId`, if anything. */
  get (docId: DocId): Seen<Row, Version> | undefined {
    return this.docs.get(docId)
  }

  /** The store loaded `docId`: these are its rows and snapshot version now. */
  loaded (docId: DocId, rows: readonly Row[], version: Version): void {
    this.docs.set(docId, { rows, version })
  }

  /** A batch to learn into. */
  batch (): SeenBatch<Row, Version> {
    return new SeenBatch(this)
  }

  /** Keeps what `batch` learned: call only once its transaction has committed. */
  commit (batch: SeenBatch<Row, Version>): void {
    for (const [docId, entry] of batch.entries) {
      if (entry === null) this.docs.delete(docId)
      // `all` makes an array of exactly the rows (one grown by push keeps slack, per open document).
      else this.docs.set(docId, { rows: entry.all, version: entry.version })
    }
  }
}
