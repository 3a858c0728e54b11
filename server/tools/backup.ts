/**
 * `petaldb backup`: a consistent copy of a relay's database, taken while the relay runs.
 * It reads through a read-only connection and needs no lock on the data directory: the
 * relay keeps serving and committing meanwhile (see database-copy.ts), and the backup holds
 * the database as it was when the copy began, deleted documents' tombstones included.
 */
import { existsSync } from 'node:fs'
import { resolve } from 'node:path'
import { relayDatabasePath } from '../data-dir.js'
import { copyDatabase, type CopyResult } from './database-copy.js'
import { checkRelaySchema, openReadOnly } from './read-only-store.js'
import { ToolError } from './tool-error.js'

/** What to back up, and where. */
export interface BackupOptions {
  /** The relay's data directory. */
  dataDir: string
  /** The backup file to write. */
  out: string
  /** Replace `out` if it exists. */
  force?: boolean
  /** Pages copied so far, out of the total, and the page size. */
  onProgress?: (copied: number, total: number, pageSize: number) => void
}

/** Writes a backup of the relay database in `dataDir` to `out`; throws a {@link ToolError} saying why it cannot. */
export async function backupRelay ({ dataDir, out, force = false, onProgress }: BackupOptions): Promise<CopyResult> {
  const database = relayDatabasePath(dataDir)
  if (existsSync(out) && !force) throw new ToolError(`${out} already exists: pass --force to replace it`)
  // Replacing the live database by its own copy would drop its write-ahead log, and the relay's latest commits with it.
  if (resolve(out) === resolve(database)) throw new ToolError(`${out} is the relay's database itself: write the backup somewhere else`)
  if (!existsSync(resolve(out, '..'))) throw new ToolError(`cannot write ${out}: its directory does not exist`)
  const db = openReadOnly(database)
  try {
    checkRelaySchema(db, database)
    return await copyDatabase(db, out, onProgress)
  } finally {
    db.close()
  }
}
