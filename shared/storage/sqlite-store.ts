/**
 * A {@link DocStore} in one SQLite file (better-sqlite3, WAL, synchronous=FULL).
 *
 * Group commit: writes are queued and committed together in one transaction on the next
 * turn of the event loop, so a burst of updates costs one fsync; each write's promise
 * resolves only after that commit.
 *
 * Several stores may share one file (two replicas in one process, or in two): each tracks
 * the log rows it loaded or appended and the snapshot version it last saw, and a
 * compaction removes only those rows and keeps a snapshot it never saw as a log row, so
 * no writer's compaction drops another's updates.
 */
import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import type Database from 'better-sqlite3'
import { requirePeer } from '../node-peers.js'
import type { DocId } from '../wire/doc-id.js'
import type { StoredDoc } from './store.js'
import { BatchedStore, type CommitInfo, type StoreWrite } from './batched-store.js'
import { SeenRows, type SeenBatch } from './seen-rows.js'

export type { CommitInfo }

/** Options of {@link SqliteStore}. */
export interface SqliteStoreOptions {
  /** Called after every successful group commit. */
  onCommit?: (info: CommitInfo) => void
  /**
   * Overwrite deleted content with zeros (SQLite's `secure_delete`), so that a deleted
   * document, and the log rows and snapshots compaction replaced, do not linger in the
   * file's free pages. Costs some writes; the relay turns it on.
   */
  secureDelete?: boolean
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

/**
 * Creates the tables of a {@link SqliteStore} in `db` where they are missing, and brings
 * those of an older store up to date: what a store does to the file it opens, and all of
 * what a fresh file then holds (a restore builds its database with it, and nothing else).
 */
export function prepareStoreSchema (db: Database.Database): void {
  db.exec(SCHEMA)
  const columns = db.prepare('SELECT name FROM pragma_table_info(\'docs\')').pluck().all() as string[]
  if (!columns.includes('version')) db.exec('ALTER TABLE docs ADD COLUMN version INTEGER NOT NULL DEFAULT 0')
}

const SQLite = requirePeer<typeof Database>('better-sqlite3', 'SqliteStore')

/** better-sqlite3's default wait for a lock another connection holds. */
const BUSY_TIMEOUT_MS = 5000
/** Checkpoints tried after a delete while readers hold old pages, a second apart. */
const ERASE_ATTEMPTS = 60
const ERASE_RETRY_MS = 1000

/** Durable document storage in a SQLite file; see the module comment. */
export class SqliteStore extends BatchedStore {
  private readonly db: Database.Database
  private readonly commitWrites: (writes: StoreWrite[]) => { info: CommitInfo, seen: SeenBatch<number, number> }
  private readonly statements
  /** A document's row and log, read in one transaction (another writer may compact in between otherwise). */
  private readonly readDoc: (docId: DocId) => { row: { snapshot: Uint8Array | null, meta: Uint8Array | null, version: number } | undefined, log: Array<{ seq: number, data: Uint8Array }> }
  /** The log rows (ascending) and snapshot version (0: none) this store knows of each document; see seen-rows.ts. */
  private readonly seen = new SeenRows<number, number>(0)

  /** Opens (creating if needed, with its directory) the database file at `path`. */
  constructor (readonly path: string, private readonly options: SqliteStoreOptions = {}) {
    super()
    mkdirSync(dirname(path), { recursive: true })
    this.db = new SQLite(path)
    this.db.pragma('journal_mode = WAL')
    this.db.pragma('synchronous = FULL')
    if (options.secureDelete === true) this.db.pragma('secure_delete = ON')
    prepareStoreSchema(this.db)
    this.statements = {
      ensureDoc: this.db.prepare('INSERT OR IGNORE INTO docs (id) VALUES (?)'),
      append: this.db.prepare('INSERT INTO updates (doc, data) VALUES (?, ?)'),
      setSnapshot: this.db.prepare('INSERT INTO docs (id, snapshot, version) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET snapshot = excluded.snapshot, version = excluded.version'),
      setMeta: this.db.prepare('INSERT INTO docs (id, meta) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET meta = excluded.meta'),
      rowsUpTo: this.db.prepare('SELECT count(*) FROM updates WHERE doc = ? AND seq <= ?').pluck(),
      deleteUpTo: this.db.prepare('DELETE FROM updates WHERE doc = ? AND seq <= ?'),
      deleteRow: this.db.prepare('DELETE FROM updates WHERE seq = ?'),
      deleteLog: this.db.prepare('DELETE FROM updates WHERE doc = ?'),
      deleteDoc: this.db.prepare('DELETE FROM docs WHERE id = ?'),
      doc: this.db.prepare('SELECT snapshot, meta, version FROM docs WHERE id = ?'),
      meta: this.db.prepare('SELECT meta FROM docs WHERE id = ?').pluck(),
      log: this.db.prepare('SELECT seq, data FROM updates WHERE doc = ? ORDER BY seq'),
      list: this.db.prepare('SELECT id FROM docs WHERE substr(id, 1, ?) = ? ORDER BY id').pluck(),
      stat: this.db.prepare('SELECT coalesce(length(snapshot), 0) + (SELECT coalesce(sum(length(data)), 0) FROM updates WHERE doc = docs.id) AS bytes, meta FROM docs WHERE id = ?'),
      // `snapshot IS NULL` reads a row's header only, never a snapshot's pages.
      metaOnly: this.db.prepare('SELECT id AS docId, meta FROM docs WHERE snapshot IS NULL AND meta IS NOT NULL AND NOT EXISTS (SELECT 1 FROM updates WHERE doc = docs.id) ORDER BY id')
    }
    this.readDoc = this.db.transaction((docId: DocId) => ({
      row: this.statements.doc.get(docId) as { snapshot: Uint8Array | null, meta: Uint8Array | null, version: number } | undefined,
      log: this.statements.log.all(docId) as Array<{ seq: number, data: Uint8Array }>
    }))
    this.commitWrites = this.db.transaction((writes: StoreWrite[]) => {
      const info: CommitInfo = { updates: 0, compactions: 0, bytes: 0, seconds: 0 }
      // What the batch teaches about rows, kept only once it has committed.
      const seen = this.seen.batch()
      // Metadata updates of a document are applied in order, and written once, at the end.
      const metas = new Map<DocId, Array<(current: Uint8Array | null) => Uint8Array | null>>()
      for (const write of writes) {
        if (write.kind === 'meta') {
          metas.set(write.docId, [...metas.get(write.docId) ?? [], write.update])
          continue
        }
        if (write.kind === 'delete') {
          metas.delete(write.docId)
          seen.deleted(write.docId)
        }
        this.apply(write, info, seen)
      }
      for (const [docId, updates] of metas) {
        let meta = (this.statements.meta.get(docId) as Uint8Array | null | undefined) ?? null
        for (const update of updates) meta = update(meta)
        this.statements.setMeta.run(docId, meta)
      }
      return { info, seen }
    })
  }

  /** The database file, which names the storage (see `DocStore.name`). */
  get name (): string {
    return this.path
  }

  async load (docId: DocId): Promise<StoredDoc | null> {
    this.flush()
    const { row, log } = this.readDoc(docId)
    if (row === undefined && log.length === 0) return null
    this.seen.loaded(docId, log.map(entry => entry.seq), row?.version ?? 0)
    return { snapshot: row?.snapshot ?? null, meta: row?.meta ?? null, updates: log.map(entry => entry.data) }
  }

  async list (prefix = ''): Promise<DocId[]> {
    this.flush()
    return this.statements.list.all(prefix.length, prefix) as DocId[]
  }

  async stat (docId: DocId): Promise<{ bytes: number, meta: Uint8Array | null } | null> {
    this.flush()
    return (this.statements.stat.get(docId) as { bytes: number, meta: Uint8Array | null } | undefined) ?? null
  }

  async metaOnly (): Promise<Array<{ docId: DocId, meta: Uint8Array }>> {
    this.flush()
    return this.statements.metaOnly.all() as Array<{ docId: DocId, meta: Uint8Array }>
  }

  async erase (): Promise<boolean> {
    this.flush()
    return this.checkpoint(ERASE_ATTEMPTS)
  }

  /**
   * Folds the write-ahead log, which still holds the pages as they were before a delete,
   * into the file and empties it; returns whether it did. A reader (another process, a
   * backup) holding an older snapshot keeps those pages: then it tries again later instead
   * of waiting, which would stall every write behind it.
   */
  private checkpoint (attempts: number): boolean {
    if (!this.db.open) return false
    this.db.pragma('busy_timeout = 0')
    let busy: number
    try {
      busy = (this.db.pragma('wal_checkpoint(TRUNCATE)') as Array<{ busy: number }>)[0]?.busy ?? 0
    } finally {
      this.db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`)
    }
    if (busy !== 0 && attempts > 1) setTimeout(() => this.checkpoint(attempts - 1), ERASE_RETRY_MS).unref?.()
    return busy === 0
  }

  protected get description (): string {
    return `SqliteStore ${this.path}`
  }

  protected commitBatch (writes: StoreWrite[]): void {
    // A failed transaction rolled back: what it would have taught about rows is dropped with it.
    const started = performance.now()
    const { info, seen } = this.commitWrites(writes)
    info.seconds = (performance.now() - started) / 1000
    this.seen.commit(seen)
    this.options.onCommit?.(info)
  }

  protected release (): void {
    this.db.close()
  }

  private apply (write: Exclude<StoreWrite, { kind: 'meta' }>, info: CommitInfo, batch: SeenBatch<number, number>): void {
    switch (write.kind) {
      case 'append': {
        const seen = batch.of(write.docId)
        if (seen.isBlank(0)) this.statements.ensureDoc.run(write.docId)
        seen.append(Number(this.statements.append.run(write.docId, write.data).lastInsertRowid))
        info.updates++
        info.bytes += write.data.length
        break
      }
      case 'compact': {
        const seen = batch.of(write.docId)
        const current = this.statements.doc.get(write.docId) as { snapshot: Uint8Array | null, version: number } | undefined
        // A snapshot another store wrote since this one last saw the document is kept, as a log row.
        if (current?.snapshot != null && current.version !== seen.version) this.statements.append.run(write.docId, current.snapshot)
        const version = (current?.version ?? 0) + 1
        // Snapshot first, log second: even outside a transaction a crash in between
        // could only leave updates that the snapshot already contains.
        this.statements.setSnapshot.run(write.docId, write.data, version)
        this.deleteCompacted(write.docId, seen.all)
        seen.compacted(version)
        info.compactions++
        info.bytes += write.data.length
        break
      }
      case 'delete':
        this.statements.deleteLog.run(write.docId)
        this.statements.deleteDoc.run(write.docId)
        break
    }
  }

  /**
   * The second step of a compaction, in its transaction: deletes the log `rows` of `docId`
   * that the snapshot just written replaces (in one statement when no other store's row lies
   * among them). Synchronous, like the whole commit. A subclass may override it to act between
   * the two steps and then call it (a crash test kills its process there).
   */
  protected deleteCompacted (docId: DocId, rows: readonly number[]): void {
    const last = rows[rows.length - 1]
    if (last === undefined) return
    if (this.statements.rowsUpTo.get(docId, last) === rows.length) {
      this.statements.deleteUpTo.run(docId, last)
      return
    }
    for (const row of rows) this.statements.deleteRow.run(row)
  }
}
