/**
 * A consistent copy of a SQLite database into a file, with SQLite's online backup API,
 * while other processes keep writing to it (a running relay).
 *
 * The backup API copies a few pages per step. Between steps, a write by another connection
 * makes it start over, so under a steady write load a copy in steps would never finish:
 * the source connection holds one read transaction for the whole copy instead. The copy is
 * then of one snapshot, the moment that transaction began, and never restarts; in WAL mode
 * the writer does not wait for a reader, it only cannot fold the write-ahead log back into
 * the database past that snapshot until the copy ends (the log grows meanwhile, and a
 * checkpoint that must empty it, as a relay's erasure after a deletion, waits for the copy).
 *
 * The copy is written next to its destination and renamed over it once complete and
 * flushed to disk, so the destination is never a partial file. It is left in rollback
 * journal mode, one self-contained file (a relay switches it back to WAL when it opens it).
 */
import type Database from 'better-sqlite3'
import { requirePeer } from '../../shared/node-peers.js'
import { partialPathOf, putInPlace, removeDatabase } from './database-file.js'

/** Pages copied per backup step: small enough to report progress, large enough to be few. */
const PAGES_PER_STEP = 256

/** What a copy wrote. */
export interface CopyResult {
  pages: number
  bytes: number
}

/**
 * Copies `source` into the file `destination` (replacing it, and any write-ahead log left
 * beside it) and resolves once the copy is on disk. `onProgress` hears pages copied so far
 * out of the total, and the page size.
 */
export async function copyDatabase (
  source: Database.Database,
  destination: string,
  onProgress: (copied: number, total: number, pageSize: number) => void = () => {}
): Promise<CopyResult> {
  const partial = partialPathOf(destination)
  const pageSize = source.pragma('page_size', { simple: true }) as number
  const SQLite = requirePeer<typeof Database>('better-sqlite3', 'petaldb')
  source.exec('BEGIN')
  try {
    // BEGIN is deferred: the read transaction, and with it the snapshot, starts at the first read.
    source.prepare('SELECT count(*) FROM sqlite_master').get()
    const result = await source.backup(partial, {
      progress: ({ totalPages, remainingPages }) => {
        onProgress(totalPages - remainingPages, totalPages, pageSize)
        return PAGES_PER_STEP
      }
    })
    onProgress(result.totalPages, result.totalPages, pageSize)
    const copy = new SQLite(partial)
    try {
      copy.pragma('journal_mode = DELETE')
    } finally {
      copy.close()
    }
    putInPlace(partial, destination)
    return { pages: result.totalPages, bytes: result.totalPages * pageSize }
  } catch (error) {
    removeDatabase(partial)
    throw error
  } finally {
    if (source.inTransaction) source.exec('COMMIT')
  }
}
