/**
 * A relay's data directory, held by one relay at a time. Two relays writing one database
 * would each keep their own copy of a document in memory and serve different text for it,
 * so a relay takes an exclusive lock first and refuses to start if another process has it.
 *
 * The lock is SQLite's own (an exclusive transaction on `relay.lock`, POSIX advisory file
 * locks underneath): the operating system drops it when the holder dies, even by kill -9, so
 * there is never a stale lock to clean up. Who holds it is written next to it in
 * `relay.pid`, for the message the next relay prints.
 */
import { accessSync, constants, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join, resolve } from 'node:path'
import type Database from 'better-sqlite3'
import { requirePeer } from '../shared/node-peers.js'

/** The database file of a relay whose data directory is `dataDir`. */
export const relayDatabasePath = (dataDir: string): string => join(dataDir, 'relay.db')

/** The data directory cannot be used: not creatable, not writable, or held by another relay. */
export class DataDirError extends Error {
  override name = 'DataDirError'
}

/** A held data directory; {@link release} lets another relay take it. */
export interface DataDirLock {
  release(): void
}

interface Holder { pid: number, host: string, startedAt: string }

/**
 * Creates `dir` if needed, checks that it is writable, and takes its lock. Throws a
 * {@link DataDirError} naming the directory (and the process holding it) otherwise, ending
 * with `advice`: what to do instead (the default suits a relay that is starting).
 */
export function lockDataDir (dir: string, advice = 'stop it, or give this relay another --data directory'): DataDirLock {
  const path = resolve(dir)
  try {
    mkdirSync(path, { recursive: true })
    accessSync(path, constants.W_OK)
  } catch (error) {
    throw new DataDirError(`cannot use data directory ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`)
  }
  const SQLite = requirePeer<typeof Database>('better-sqlite3', 'The relay')
  let db: Database.Database
  try {
    db = new SQLite(join(path, 'relay.lock'), { timeout: 0 })
    db.pragma('locking_mode = EXCLUSIVE')
    db.exec('BEGIN EXCLUSIVE; CREATE TABLE IF NOT EXISTS held (at TEXT); COMMIT')
  } catch (error) {
    if ((error as { code?: string }).code === 'SQLITE_BUSY') throw new DataDirError(`data directory ${path} is in use by another relay${describe(holder(path))}: ${advice}`)
    throw new DataDirError(`cannot lock data directory ${path}: ${(error as Error).message}`)
  }
  const me: Holder = { pid: process.pid, host: hostname(), startedAt: new Date().toISOString() }
  writeFileSync(join(path, 'relay.pid'), JSON.stringify(me) + '\n')
  return { release: () => { if (db.open) db.close() } }
}

function holder (dir: string): Holder | null {
  try {
    return JSON.parse(readFileSync(join(dir, 'relay.pid'), 'utf8')) as Holder
  } catch {
    return null
  }
}

function describe (who: Holder | null): string {
  return who === null ? '' : ` (pid ${who.pid} on ${who.host}, started ${who.startedAt})`
}
