/**
 * The relay as a library: `import { startRelay } from 'petaldb/server'`.
 */
export { startRelay, relayDatabasePath, type Relay, type RelayOptions, type RelayHealth } from './relay.js'
export { serveNativeLink, type NativeConnectionOptions } from './connections/native-connection.js'
export { DocumentRegistry, type RegistryOptions } from './documents/registry.js'
export type { PostgresOptions } from './postgres/postgres-node.js'
export type { RelayNode } from './relay-node.js'
export type { RelayHooks, ChangeEvent } from './hooks.js'
export type { WebhookOptions } from './webhooks.js'
export { AuthError } from '../shared/errors.js'
export type { Grant } from '../shared/listen/auth.js'
