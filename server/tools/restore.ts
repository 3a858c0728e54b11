/**
 * `petaldb restore`: a backup put in place as a data directory's database. The directory's
 * lock is held while restoring, so that no relay can start on it halfway; a directory that
 * a relay holds, or that already has a database, is refused (the latter unless forced).
 * The backup must open and pass SQLite's integrity check before anything is replaced.
 */
import { existsSync } from 'node:fs'
import { lockDataDir } from '../data-dir.js'
import { relayDatabasePath } from '../relay.js'
import { copyDatabase, type CopyResult } from './database-copy.js'
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
  /** Pages copied so far, out of the total, and the page size. */
  onProgress?: (copied: number, total: number, pageSize: number) => void
}

/**
 * Restores the backup `from` into `dataDir`. Throws a `DataDirError` if a relay holds the
 * directory, a {@link ToolError} if it has a database (without `force`) or the
 * backup is unusable.
 */
export async function restoreRelay ({ from, dataDir, force = false, onProgress }: RestoreOptions): Promise<CopyResult> {
  const lock = lockDataDir(dataDir, 'stop it before restoring into its data directory')
  try {
    const database = relayDatabasePath(dataDir)
    if (existsSync(database) && !force) throw new ToolError(`${dataDir} already has a database (${database}): pass --force to replace it`)
    const backup = openReadOnly(from)
    try {
      verify(backup, from)
      return await copyDatabase(backup, database, onProgress)
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
