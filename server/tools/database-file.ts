/**
 * A database file written beside its destination and put in place only once complete, so
 * that the destination is either the file it was or the whole new one, never a partial
 * file: what backup and restore write.
 */
import { closeSync, fsyncSync, openSync, renameSync, rmSync } from 'node:fs'
import { dirname } from 'node:path'

/** The files SQLite may keep beside a database. */
const SIDE_FILES = ['-wal', '-shm', '-journal']

/** Where to write the database that will replace `destination`. */
export function partialPathOf (destination: string): string {
  return `${destination}.partial-${process.pid}`
}

/** Flushes the complete database `partial` to disk and renames it over `destination`. */
export function putInPlace (partial: string, destination: string): void {
  syncPath(partial)
  // A write-ahead log beside the destination belongs to the file being replaced: SQLite would apply it to the new one.
  for (const suffix of SIDE_FILES) rmSync(destination + suffix, { force: true })
  renameSync(partial, destination)
  syncPath(dirname(destination))
}

/** Removes the database `path` and the files beside it, if they exist (a partial file that failed). */
export function removeDatabase (path: string): void {
  for (const suffix of ['', ...SIDE_FILES]) rmSync(path + suffix, { force: true })
}

/** Flushes a file or a directory (a rename) to disk. */
function syncPath (path: string): void {
  const fd = openSync(path, 'r')
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}
