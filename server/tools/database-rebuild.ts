/**
 * A relay database rebuilt from the rows of another: what `petaldb restore` puts in place,
 * rather than the backup file itself. The new file is created by the store's own schema
 * code (`prepareStoreSchema`) and only the rows of `docs` and `updates` are copied into it,
 * so nothing else a backup may carry comes along: a trigger (one deleting each stored update
 * would let a relay acknowledge writes that its next start has lost), a view, another table
 * or index, a column defined otherwise. Free pages, which may hold deleted content, stay
 * behind too. What was left out is named.
 *
 * Each row is checked against what the store writes: a valid document id, bytes as blobs
 * (a snapshot and metadata may be NULL), sequence numbers and versions as exact integers.
 * A row that fails is a backup a relay would misread: the rebuild stops, naming the row,
 * and nothing is put in place. (Documents' content is checked by the relay as it loads
 * each, as for any stored document.)
 */
import type Database from 'better-sqlite3'
import { requirePeer } from '../../shared/node-peers.js'
import { prepareStoreSchema } from '../../shared/storage/sqlite-store.js'
import { docIdProblem } from '../../shared/wire/doc-id.js'
import { partialPathOf, putInPlace, removeDatabase } from './database-file.js'
import { ToolError } from './tool-error.js'

/** What a rebuild wrote. */
export interface RebuildResult {
  documents: number
  updates: number
  pages: number
  bytes: number
  /** Schema objects of the source that the rebuilt database does not have, as "trigger name", sorted. */
  leftOut: string[]
}

/** Rows copied between two progress reports. */
const ROWS_PER_REPORT = 256

/** A row as read, integers as bigints (exact, whatever the source holds). */
type Row = Record<string, unknown>

/**
 * Rebuilds the relay database `source` (read from the file `sourcePath`) into the file
 * `destination`, replacing it once complete; see the module comment. `onProgress` hears
 * rows copied so far out of the total, and the bytes they hold. Throws a {@link ToolError}
 * naming the first row that fails its check.
 */
export function rebuildRelayDatabase (
  source: Database.Database,
  sourcePath: string,
  destination: string,
  onProgress: (rows: number, total: number, bytes: number) => void = () => {}
): RebuildResult {
  const partial = partialPathOf(destination)
  removeDatabase(partial)
  const SQLite = requirePeer<typeof Database>('better-sqlite3', 'petaldb')
  const db = new SQLite(partial)
  // One read transaction: the counts, the rows and the schema of one moment of the source.
  source.exec('BEGIN')
  try {
    prepareStoreSchema(db)
    const { documents, updates } = copyRows(source, sourcePath, db, onProgress)
    const kept = new Set(schemaObjects(db))
    const leftOut = schemaObjects(source).filter(object => !kept.has(object))
    const pageSize = db.pragma('page_size', { simple: true }) as number
    const pages = db.pragma('page_count', { simple: true }) as number
    db.close()
    putInPlace(partial, destination)
    return { documents, updates, pages, bytes: pages * pageSize, leftOut }
  } catch (error) {
    if (db.open) db.close()
    removeDatabase(partial)
    throw error
  } finally {
    if (source.inTransaction) source.exec('COMMIT')
  }
}

/** Copies the rows of `docs` and `updates` from `source` into `db`, in one transaction, each checked. */
function copyRows (source: Database.Database, sourcePath: string, db: Database.Database, onProgress: (rows: number, total: number, bytes: number) => void): { documents: number, updates: number } {
  const read = (sql: string): Database.Statement => {
    try {
      return source.prepare(sql).safeIntegers(true)
    } catch (error) {
      throw new ToolError(`${sourcePath} cannot be read as a relay database (${(error as Error).message}): not restored`)
    }
  }
  // Databases of relays before snapshot versions have no version column: their snapshots are version 0.
  const version = columnsOf(source, 'docs').includes('version') ? 'version' : '0 AS version'
  const docs = read(`SELECT id, snapshot, meta, ${version} FROM docs`)
  const updates = read('SELECT seq, doc, data FROM updates')
  const total = Number(read('SELECT (SELECT count(*) FROM docs) + (SELECT count(*) FROM updates)').pluck().get())
  const insertDoc = db.prepare('INSERT INTO docs (id, snapshot, meta, version) VALUES (?, ?, ?, ?)')
  const insertUpdate = db.prepare('INSERT INTO updates (seq, doc, data) VALUES (?, ?, ?)')
  let rows = 0
  let bytes = 0
  const copied = (size: number): void => {
    bytes += size
    if (++rows % ROWS_PER_REPORT === 0) onProgress(rows, total, bytes)
  }
  onProgress(0, total, 0)
  const counts = db.transaction(() => {
    let documents = 0
    for (const row of docs.iterate() as Iterable<Row>) {
      const problem = docRowProblem(row) ?? inserted(() => insertDoc.run(row.id, row.snapshot, row.meta, row.version), 'id')
      if (problem !== null) throw refused(sourcePath, 'a docs row', `id ${shown(row.id)}`, problem)
      documents++
      copied(byteLength(row.snapshot) + byteLength(row.meta))
    }
    let updateRows = 0
    for (const row of updates.iterate() as Iterable<Row>) {
      const problem = updateRowProblem(row) ?? inserted(() => insertUpdate.run(row.seq, row.doc, row.data), 'seq')
      if (problem !== null) throw refused(sourcePath, 'an updates row', `seq ${shown(row.seq)}`, problem)
      updateRows++
      copied(byteLength(row.data))
    }
    return { documents, updates: updateRows }
  })()
  onProgress(rows, total, bytes)
  return counts
}

/** Why a row of `docs` is not one the store writes, or null. */
function docRowProblem ({ id, snapshot, meta, version }: Row): string | null {
  if (typeof id !== 'string') return `id is ${kindOf(id)}, not text`
  return docIdProblem(id) ?? blobProblem('snapshot', snapshot, true) ?? blobProblem('meta', meta, true) ?? countProblem('version', version, 0n)
}

/** Why a row of `updates` is not one the store writes, or null. */
function updateRowProblem ({ seq, doc, data }: Row): string | null {
  const problem = countProblem('seq', seq, 1n) ?? (typeof doc === 'string' ? docIdProblem(doc) : `doc is ${kindOf(doc)}, not text`)
  return problem ?? blobProblem('data', data, false)
}

/** Why `value` is not a blob (nor NULL, if `nullable`), or null. */
function blobProblem (column: string, value: unknown, nullable: boolean): string | null {
  if (Buffer.isBuffer(value) || (nullable && value === null)) return null
  return `${column} is ${kindOf(value)}, not a blob`
}

/** Why `value` is not an integer from `least` up to what a relay counts exactly (it reads them as numbers), or null. */
function countProblem (column: string, value: unknown, least: bigint): string | null {
  if (typeof value !== 'bigint') return `${column} is ${kindOf(value)}, not an integer`
  return value >= least && value <= BigInt(Number.MAX_SAFE_INTEGER) ? null : `${column} is out of range`
}

/** Runs an insert; returns why it was refused if the row's key is another's, or null. */
function inserted (insert: () => void, key: string): string | null {
  try {
    insert()
    return null
  } catch (error) {
    if ((error as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') return `another row has the same ${key}`
    throw error
  }
}

/** The error refusing `sourcePath` for its row `row`, named by `key`. */
function refused (sourcePath: string, row: string, key: string, problem: string): ToolError {
  return new ToolError(`${sourcePath} holds ${row} a relay would not accept (${key}: ${problem}): not restored`)
}

/** The columns of `table`. */
function columnsOf (db: Database.Database, table: string): string[] {
  return db.prepare('SELECT name FROM pragma_table_info(?)').pluck().all(table) as string[]
}

/** The schema objects of `db` but SQLite's own, as "type name", sorted. */
function schemaObjects (db: Database.Database): string[] {
  return db.prepare(String.raw`SELECT type || ' ' || name FROM sqlite_schema WHERE name NOT LIKE 'sqlite\_%' ESCAPE '\' ORDER BY 1`).pluck().all() as string[]
}

/** What kind of SQLite value `value` is, for a message. */
function kindOf (value: unknown): string {
  if (value === null) return 'NULL'
  if (typeof value === 'bigint') return 'an integer'
  if (typeof value === 'number') return 'a real number'
  if (typeof value === 'string') return 'text'
  return 'a blob'
}

/** `value` as a message shows it: text quoted and cut short. */
function shown (value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.slice(0, 80))
  if (typeof value === 'bigint') return String(value)
  return kindOf(value)
}

/** Bytes of a blob column's value (0 for NULL). */
function byteLength (value: unknown): number {
  return Buffer.isBuffer(value) ? value.length : 0
}
