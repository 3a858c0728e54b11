/**
 * `petaldb restore`: a data directory's database rebuilt from a backup. The directory's
 * lock is held while restoring, so that no relay can start on it halfway; a directory that
 * a relay holds, or that already has a database, is refused (the latter unless forced).
 *
 * A backup file may come from anywhere, and SQLite runs what a database file's schema says
 * (triggers on every write, views, column defaults): so the file is not put in place as it
 * is. It must open and pass SQLite's integrity check, then its documents' rows, each
 * checked, are copied into a new database of the relay's own schema (database-rebuild.ts),
 * which replaces the directory's once complete: a refused backup leaves it as it was.
 */
import { existsSync } from 'node:fs'
import { lockDataDir } from '../data-dir.js'
import { relayDatabasePath } from '../data-dir.js'
import { rebuildRelayDatabase, type RebuildResult } from './database-rebuild.js'
import { checkRelaySchema, openReadOnly } from './read-only-store.js'
import { ToolError } from './tool-error.js'

/** What to restore, and where. */
export interface RestoreOptions {
  /** The backup file. */
  from: string
  /** The data directory to restore into (created if needed). */
  dataDir: string
  /** Replace the database the directory already has. */
  force?: boolean
  /** Rows copied so far, out of the total, and the bytes they hold. */
  onProgress?: (rows: number, total: number, bytes: number) => void
}

/**
 * Restores the backup `from` into `dataDir`; see the module comment. Throws a
 * `DataDirError` if a relay holds the directory, a {@link ToolError} if it has a database
 * (without `force`) or the backup is unusable or holds a row a relay would not accept.
 */
export async function restoreRelay ({ from, dataDir, force = false, onProgress }: RestoreOptions): Promise<RebuildResult> {
  const lock = lockDataDir(dataDir, 'stop it before restoring into its data directory')
  try {
    const database = relayDatabasePath(dataDir)
    if (existsSync(database) && !force) throw new ToolError(`${dataDir} already has a database (${database}): pass --force to replace it`)
    const backup = openReadOnly(from)
    try {
      // SQLite's advice for a database file of unknown origin: no functions run from its schema, and pages checked as they are read.
      backup.pragma('trusted_schema = OFF')
      backup.pragma('cell_size_check = ON')
      verify(backup, from)
      return rebuildRelayDatabase(backup, from, database, onProgress)
    } finally {
      backup.close()
    }
  } finally {
    lock.release()
  }
}

/** Throws unless `db` is a relay database that passes `PRAGMA integrity_check`. */
function verify (db: ReturnType<typeof openReadOnly>, path: string): void {
  checkRelaySchema(db, path)
  let problems: string[]
  try {
    problems = (db.pragma('integrity_check') as Array<{ integrity_check: string }>).map(row => row.integrity_check)
  } catch (error) {
    problems = [(error as Error).message]
  }
  if (problems.length !== 1 || problems[0] !== 'ok') {
    throw new ToolError(`${path} fails SQLite's integrity check (${problems.length} problems; the first: ${problems[0] ?? 'none reported'}): not restored`)
  }
}
