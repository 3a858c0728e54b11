/**
 * A {@link DocStore} in one SQLite file (better-sqlite3, WAL, synchronous=FULL).
 *
 * Group commit: writes are queued and committed together in one transaction on the next
 * turn of the event loop, so a burst of updates costs one fsync; each write's promise
 * resolves only after that commit.
 */
import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import Database from 'better-sqlite3'
import type { DocId } from '../wire/doc-id.js'
import type { StoredDoc } from './store.js'
import { BatchedStore, type StoreWrite } from './batched-store.js'

/** What one group commit wrote. */
export interface CommitInfo {
  /** Updates appended to logs. */
  updates: number
  /** Snapshots written (compactions). */
  compactions: number
  /** Bytes written in updates and snapshots. */
  bytes: number
}

/** Options of {@link SqliteStore}. */
export interface SqliteStoreOptions {
  /** Called after every successful group commit. */
  onCommit?: (info: CommitInfo) => void
  /**
   * Fault injection for crash tests: runs inside the compaction transaction, after the
   * new snapshot is written and before the log prefix is deleted.
   */
  betweenCompactionSteps?: () => void
}

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS docs (
    id TEXT PRIMARY KEY,
    snapshot BLOB,
    meta BLOB
  ) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS updates (
    seq INTEGER PRIMARY KEY,
    doc TEXT NOT NULL,
    data BLOB NOT NULL
  );
  CREATE INDEX IF NOT EXISTS updates_by_doc ON updates (doc, seq);
`

/** Durable document storage in a SQLite file; see the module comment. */
export class SqliteStore extends BatchedStore {
  private readonly db: Database.Database
  private readonly commitWrites: (writes: StoreWrite[]) => CommitInfo
  private readonly statements
  /** Documents known to have a row in `docs`, so appends skip the insert-if-missing. */
  private readonly knownDocs = new Set<DocId>()

  /** The database file, which names the storage (see `DocStore.name`). */
  get name (): string {
    return this.path
  }

  /** Opens (creating if needed, with its directory) the database file at `path`. */
  constructor (readonly path: string, private readonly options: SqliteStoreOptions = {}) {
    super()
    mkdirSync(dirname(path), { recursive: true })
    this.db = new Database(path)
    this.db.pragma('journal_mode = WAL')
    this.db.pragma('synchronous = FULL')
    this.db.exec(SCHEMA)
    this.statements = {
      ensureDoc: this.db.prepare('INSERT OR IGNORE INTO docs (id) VALUES (?)'),
      append: this.db.prepare('INSERT INTO updates (doc, data) VALUES (?, ?)'),
      setSnapshot: this.db.prepare('INSERT INTO docs (id, snapshot) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET snapshot = excluded.snapshot'),
      setMeta: this.db.prepare('INSERT INTO docs (id, meta) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET meta = excluded.meta'),
      deleteLog: this.db.prepare('DELETE FROM updates WHERE doc = ?'),
      deleteDoc: this.db.prepare('DELETE FROM docs WHERE id = ?'),
      doc: this.db.prepare('SELECT snapshot, meta FROM docs WHERE id = ?'),
      log: this.db.prepare('SELECT data FROM updates WHERE doc = ? ORDER BY seq').pluck(),
      list: this.db.prepare('SELECT id FROM docs WHERE substr(id, 1, ?) = ? ORDER BY id').pluck()
    }
    this.commitWrites = this.db.transaction((writes: StoreWrite[]) => {
      const info: CommitInfo = { updates: 0, compactions: 0, bytes: 0 }
      // Only the last metadata of a document in a batch matters: write it once, at the end.
      const metas = new Map<DocId, Uint8Array>()
      for (const write of writes) {
        if (write.kind === 'meta') metas.set(write.docId, write.data)
        else if (write.kind === 'delete') metas.delete(write.docId)
        this.apply(write, info)
      }
      for (const [docId, meta] of metas) {
        this.statements.setMeta.run(docId, meta)
        this.knownDocs.add(docId)
      }
      return info
    })
  }

  async load (docId: DocId): Promise<StoredDoc | null> {
    this.flush()
    const row = this.statements.doc.get(docId) as { snapshot: Uint8Array | null, meta: Uint8Array | null } | undefined
    if (row === undefined) return null
    return { snapshot: row.snapshot, meta: row.meta, updates: this.statements.log.all(docId) as Uint8Array[] }
  }

  async list (prefix = ''): Promise<DocId[]> {
    this.flush()
    return this.statements.list.all(prefix.length, prefix) as DocId[]
  }

  protected get description (): string {
    return `SqliteStore ${this.path}`
  }

  protected commitBatch (writes: StoreWrite[]): void {
    let info: CommitInfo
    try {
      info = this.commitWrites(writes)
    } catch (error) {
      // The transaction rolled back: forget what it taught us about existing rows.
      this.knownDocs.clear()
      throw error
    }
    this.options.onCommit?.(info)
  }

  protected release (): void {
    this.db.close()
  }

  private apply (write: StoreWrite, info: CommitInfo): void {
    switch (write.kind) {
      case 'append':
        if (!this.knownDocs.has(write.docId)) {
          this.statements.ensureDoc.run(write.docId)
          this.knownDocs.add(write.docId)
        }
        this.statements.append.run(write.docId, write.data)
        info.updates++
        info.bytes += write.data.length
        break
      case 'compact':
        // Snapshot first, log second: even outside a transaction a crash in between
        // could only leave updates that the snapshot already contains.
        this.statements.setSnapshot.run(write.docId, write.data)
        this.knownDocs.add(write.docId)
        this.options.betweenCompactionSteps?.()
        this.statements.deleteLog.run(write.docId)
        info.compactions++
        info.bytes += write.data.length
        break
      case 'meta':
        break // written once per batch by the transaction
      case 'delete':
        this.statements.deleteLog.run(write.docId)
        this.statements.deleteDoc.run(write.docId)
        this.knownDocs.delete(write.docId)
        break
    }
  }
}
