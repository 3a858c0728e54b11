/**
 * The relay as a library: `import { startRelay } from 'petaldb/server'`.
 */
export { startRelay, relayDatabasePath, type Relay, type RelayOptions, type RelayHealth } from './relay.js'
export { SqliteStore, type SqliteStoreOptions, type CommitInfo } from '../client/sqlite-store.js'
