/**
 * The one place that knows every deployment by name: it opens the one `options` ask for
 * (see `deployment.ts`). Each kind's packages (better-sqlite3, pg) are loaded only when used.
 */
import type { Logger } from 'pino'
import type { CommitInfo } from '../../shared/storage/batched-store.js'
import type { DeploymentOptions } from '../relay-options.js'
import type { Deployment } from './deployment.js'
import { openSqlite, standalone, type OwnedStore } from './standalone.js'
import { sqliteCluster } from './sqlite-cluster.js'
import { postgres } from './postgres.js'

/** Where a relay keeps its data by default. */
export const DEFAULT_DATA_DIR = './petal-data'

/** What a deployment needs to know of the relay it serves. */
export interface RelaySettings {
  /** Clients must present a token: then relays must prove themselves too. */
  authenticated: boolean
}

/** Opens the deployment `options` describe; `onCommit` hears every commit of its store. */
export async function openDeployment (options: DeploymentOptions, relay: RelaySettings, logger: Logger, onCommit: (info: CommitInfo) => void): Promise<Deployment> {
  if (relay.authenticated && options.cluster !== undefined && (options.cluster.secret ?? '') === '') {
    throw new Error('a relay with client authentication in a cluster needs a cluster secret: without one, anyone could join as a relay')
  }
  if (options.postgres !== undefined) return await postgres(options.postgres, options.relayId, logger, onCommit)
  const dataDir = options.store === undefined ? options.dataDir ?? DEFAULT_DATA_DIR : undefined
  const owned: OwnedStore = dataDir === undefined
    ? { store: options.store!, lock: null, where: 'data in the store given' }
    : await openSqlite(dataDir, onCommit)
  if (options.cluster !== undefined) return sqliteCluster(options.cluster, owned, dataDir, logger)
  return standalone(owned, options.relayId)
}
