/**
 * A relay on its own: documents in the SQLite database of its data directory (held by a
 * lock, see `data-dir.ts`), or in a store the embedding app passes; no other relay, so it
 * serves every document itself.
 */
import type { DocStore } from '../../shared/storage/store.js'
import type { CommitInfo } from '../../shared/storage/batched-store.js'
import { lockDataDir, relayDatabasePath, type DataDirLock } from '../data-dir.js'
import type { Deployment } from './deployment.js'

/** A store, and the data directory's lock that keeps other relays off it (none for a store the app passed). */
export interface OwnedStore {
  store: DocStore
  lock: DataDirLock | null
  /** Where the data is, in words (`data in ./petal-data`). */
  where: string
}

/** Takes the lock of `dataDir` and opens its SQLite database; `better-sqlite3` is loaded only here. */
export async function openSqlite (dataDir: string, onCommit: (info: CommitInfo) => void): Promise<OwnedStore> {
  const lock = lockDataDir(dataDir)
  try {
    const { SqliteStore } = await import('../../shared/storage/sqlite-store.js')
    return { store: new SqliteStore(relayDatabasePath(dataDir), { onCommit, secureDelete: true }), lock, where: `data in ${dataDir}` }
  } catch (error) {
    lock.release()
    throw error
  }
}

/** Closes `owned`'s store and lets go of its data directory. */
export async function closeOwned (owned: OwnedStore): Promise<void> {
  try {
    await owned.store.close()
  } finally {
    owned.lock?.release()
  }
}

/** See the module comment. */
export function standalone (owned: OwnedStore, relayId: string | undefined): Deployment {
  return {
    store: owned.store,
    documents: {},
    attach: () => {},
    relayId: url => relayId ?? url,
    start: async () => {},
    routing: null,
    relayPeers: null,
    proxyTargets: () => null,
    docsRouting: () => null,
    health: () => ({ unavailable: null, relayLinks: { up: 0, inbound: 0 }, members: null }),
    describe: () => `(${owned.where})`,
    stop: async () => {},
    close: () => closeOwned(owned)
  }
}
