/**
 * The relay as a library: `import { startRelay } from 'petaldb/server'`.
 */
export { startRelay, type Relay, type RelayHealth } from './relay.js'
export type { RelayOptions, CommonRelayOptions, DeploymentOptions, StandaloneOptions, StoreOptions, ClusterRelayOptions, PostgresRelayOptions } from './relay-options.js'
export { relayDatabasePath } from './data-dir.js'
export { serveNativeLink, type NativeConnectionOptions } from './connections/native-connection.js'
export { DocumentRegistry, type RegistryOptions } from './documents/registry.js'
export type { PostgresOptions } from './postgres/postgres-node.js'
export type { Deployment, DeploymentHealth, DocumentHooks } from './deployments/deployment.js'
export type { RelayHooks, ChangeEvent } from './hooks.js'
export type { WebhookOptions } from './webhooks.js'
export { PetalError, ProtocolError, LimitError, AuthError, DocLoadError, DocDeletedError, StorageError, FencedError, MovedError, isRetryable } from '../shared/errors.js'
export type { Grant } from '../shared/listen/auth.js'
