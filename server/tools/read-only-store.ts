/**
 * A relay's database opened read-only, for the tools that read it while the relay may be
 * running (backup, export). A read-only connection cannot take the relay's write lock, so
 * it never delays the relay's commits (in WAL mode readers and the writer do not wait for
 * each other), and it cannot change the relay's data by mistake.
 *
 * {@link ReadOnlyStore} reads the tables `SqliteStore` writes, each document in one read
 * transaction: a relay's compaction replaces the snapshot and deletes the log rows it
 * covers in one commit, so reading them in two steps could see the old snapshot and the
 * log without the rows the new snapshot holds.
 */
import { existsSync } from 'node:fs'
import type Database from 'better-sqlite3'
import { requirePeer } from '../../shared/node-peers.js'
import type { DocStore, StoredDoc } from '../../shared/storage/store.js'
import type { DocId } from '../../shared/wire/doc-id.js'
import { ToolError } from './tool-error.js'

/** Opens the database file at `path` read-only; throws a {@link ToolError} naming it if that fails. */
export function openReadOnly (path: string): Database.Database {
  const SQLite = requirePeer<typeof Database>('better-sqlite3', 'petaldb')
  if (!existsSync(path)) throw new ToolError(`no database at ${path}`)
  try {
    return new SQLite(path, { readonly: true, fileMustExist: true })
  } catch (error) {
    throw new ToolError(`cannot open the database ${path}: ${(error as Error).message}`)
  }
}

/** Throws a {@link ToolError} unless `db` (at `path`) has the tables of a relay's store. */
export function checkRelaySchema (db: Database.Database, path: string): void {
  let tables: string[]
  try {
    tables = db.prepare('SELECT name FROM sqlite_master WHERE type = \'table\'').pluck().all() as string[]
  } catch (error) {
    throw new ToolError(`${path} is not a readable SQLite database: ${(error as Error).message}`)
  }
  if (!tables.includes('docs') || !tables.includes('updates')) throw new ToolError(`${path} is not a PetalDB relay database (it has no docs and updates tables)`)
}

/** A {@link DocStore} that reads a relay's database and refuses every write; see the module comment. */
export class ReadOnlyStore implements DocStore {
  private readonly db: Database.Database
  private readonly readDoc: (docId: DocId) => StoredDoc | null
  private readonly statements

  /** Opens the relay database at `path` read-only. */
  constructor (readonly path: string) {
    this.db = openReadOnly(path)
    try {
      checkRelaySchema(this.db, path)
    } catch (error) {
      this.db.close()
      throw error
    }
    this.statements = {
      doc: this.db.prepare('SELECT snapshot, meta FROM docs WHERE id = ?'),
      log: this.db.prepare('SELECT data FROM updates WHERE doc = ? ORDER BY seq').pluck(),
      list: this.db.prepare('SELECT id FROM docs WHERE substr(id, 1, ?) = ? ORDER BY id').pluck()
    }
    this.readDoc = this.db.transaction((docId: DocId): StoredDoc | null => {
      const row = this.statements.doc.get(docId) as { snapshot: Uint8Array | null, meta: Uint8Array | null } | undefined
      const updates = this.statements.log.all(docId) as Uint8Array[]
      if (row === undefined && updates.length === 0) return null
      return { snapshot: row?.snapshot ?? null, meta: row?.meta ?? null, updates }
    })
  }

  get name (): string {
    return this.path
  }

  async load (docId: DocId): Promise<StoredDoc | null> {
    return this.readDoc(docId)
  }

  async list (prefix = ''): Promise<DocId[]> {
    return this.statements.list.all(prefix.length, prefix) as DocId[]
  }

  async append (): Promise<void> {
    throw new Error(`${this.path} is open read-only`)
  }

  async compact (): Promise<void> {
    throw new Error(`${this.path} is open read-only`)
  }

  async updateMeta (): Promise<void> {
    throw new Error(`${this.path} is open read-only`)
  }

  async delete (): Promise<void> {
    throw new Error(`${this.path} is open read-only`)
  }

  async close (): Promise<void> {
    this.db.close()
  }
}
