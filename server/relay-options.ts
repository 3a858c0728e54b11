/**
 * Options of a relay (`startRelay`): what every relay has (the listener, limits, tokens,
 * hooks), and one deployment (see `deployments/`), as a union whose members exclude each
 * other: a relay stores in one place.
 */
import type { Logger } from 'pino'
import type { DocStore } from '../shared/storage/store.js'
import type { Limits } from '../shared/listen/limits.js'
import type { ClusterOptions } from './cluster/cluster.js'
import type { PostgresOptions } from './postgres/postgres-node.js'
import type { RelayHooks } from './hooks.js'
import type { WebhookOptions } from './webhooks.js'

/** What every relay has; every field has a default. */
export interface CommonRelayOptions {
  /** Interface to listen on. Default `127.0.0.1`. */
  host?: string
  /** Port to listen on; 0 picks a free one. Default 4321. */
  port?: number
  /** Milliseconds a document with no connection stays in memory. Default 30 000. */
  idleMs?: number
  /** Limits per connection and per document; see `DEFAULT_LIMITS`. */
  limits?: Partial<Limits>
  /** Token keys (`kid` → secret; '' for tokens without `kid`). Without keys the relay is open. */
  authKeys?: Map<string, string>
  /** Browser origins allowed to connect; others get HTTP 403. Default: any. */
  allowedOrigins?: string[]
  /** PEM certificate and key: serve wss:// instead of ws://. */
  tls?: { cert: string | Buffer, key: string | Buffer }
  /** Log bytes below which a document's log is never compacted. Default 16 KiB. */
  compactMinBytes?: number
  /** Milliseconds between keep-alive pings; a connection that misses one is dropped. Default 30 000. */
  pingIntervalMs?: number
  /**
   * Milliseconds a connection may take to send its request's headers (an upgrade, or HTTP);
   * also the window over which an HTTP body's pace is counted (see `minBodyBytesPerSecond`).
   * Default 10 000.
   */
  requestTimeoutMs?: number
  /** Logger; default a pino logger at level `info` on stderr. */
  logger?: Logger
  /** Hooks for the app embedding the relay; see {@link RelayHooks}. */
  hooks?: RelayHooks
  /** POST `{ docId, updatedAt }` to these URLs after changes (and deletions); see `webhooks.ts`. */
  webhooks?: Omit<WebhookOptions, 'logger'>
}

/** A relay on its own, on the SQLite database of `dataDir` (default `./petal-data`). */
export interface StandaloneOptions {
  dataDir?: string
  /** This relay's id, sent to native clients. Default its URL. */
  relayId?: string
  store?: undefined
  cluster?: undefined
  postgres?: undefined
}

/** A relay on its own, on a store the embedding app passes (and the relay closes on `close()`). */
export interface StoreOptions {
  store: DocStore
  /** This relay's id, sent to native clients. Default its URL. */
  relayId?: string
  dataDir?: undefined
  cluster?: undefined
  postgres?: undefined
}

/** A relay of a cluster on SQLite (its id is the cluster's `selfId`). */
export interface ClusterRelayOptions {
  cluster: ClusterOptions
  dataDir?: string
  relayId?: undefined
  store?: undefined
  postgres?: undefined
}

/** A relay among many on one PostgreSQL database, which they find each other through. */
export interface PostgresRelayOptions {
  postgres: PostgresOptions
  /** This relay's id among the relays on the database. Default its URL. */
  relayId?: string
  dataDir?: undefined
  store?: undefined
  cluster?: undefined
}

/** Where a relay keeps documents, and among which relays: one kind. */
export type DeploymentOptions = StandaloneOptions | StoreOptions | ClusterRelayOptions | PostgresRelayOptions

/** Options of `startRelay`. */
export type RelayOptions = CommonRelayOptions & DeploymentOptions
