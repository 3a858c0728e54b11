/**
 * The relay: a listener (see `shared/listen/`) whose plain HTTP answers `GET /healthz`,
 * whose native connections (clients and the other relays of a cluster) and stock
 * y-websocket connections are served from one document registry. Composition only:
 * storage, the registry, the protocol handlers and the cluster are separate modules.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { DocId } from '../shared/wire/doc-id.js'
import { join } from 'node:path'
import type { Logger, pino as Pino } from 'pino'
import { requirePeer } from '../shared/node-peers.js'

const { pino } = requirePeer<{ pino: typeof Pino }>('pino', 'The relay')
import type { DocStore } from '../shared/storage/store.js'
import { MovedError } from '../shared/errors.js'
import { DocumentRegistry } from './documents/registry.js'
import { serveNativeLink } from './connections/native-connection.js'
import { proxyYwsConnection } from './cluster/yws-proxy.js'
import { ClusterNode } from './cluster/cluster-node.js'
import { Authenticator } from '../shared/listen/auth.js'
import { acceptStock } from '../shared/listen/stock-accept.js'
import { DEFAULT_LIMITS, WS_CLIENT_MAX_PAYLOAD, type Limits } from '../shared/listen/limits.js'
import { listen } from '../shared/listen/listener.js'
import type { ClusterOptions } from './cluster/cluster.js'
import { lockDataDir, type DataDirLock } from './data-dir.js'
import type { RelayNode } from './relay-node.js'
import type { PostgresNode, PostgresOptions } from './postgres/postgres-node.js'
import type { Database } from './postgres/database.js'

/** Options of {@link startRelay}; every field has a default. */
export interface RelayOptions {
  /** Interface to listen on. Default `127.0.0.1`. */
  host?: string
  /** Port to listen on; 0 picks a free one. Default 4321. */
  port?: number
  /** Directory of the SQLite database, used when neither `store` nor `postgres` is given. Default `./petal-data`. */
  dataDir?: string
  /** Storage to use instead of the SQLite database in `dataDir`. The relay closes it on {@link Relay.close}. */
  store?: DocStore
  /**
   * Store documents in PostgreSQL instead, shared by any number of relays that find each
   * other through it (see `server/postgres/`); `relayId` names this relay among them.
   */
  postgres?: PostgresOptions
  /** Milliseconds a document with no connection stays in memory. Default 30 000. */
  idleMs?: number
  /** Limits per connection and per document; see {@link DEFAULT_LIMITS}. */
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
  /** Milliseconds a connection may take to send its whole upgrade request. Default 10 000. */
  requestTimeoutMs?: number
  /** This relay's id, sent to native clients and, with `postgres`, its id among the relays on the database. Default: its cluster id, else its URL. */
  relayId?: string
  /** Cluster membership; without it the relay stands alone. */
  cluster?: ClusterOptions
  /** Logger; default a pino logger at level `info` on stderr. */
  logger?: Logger
}

/** What `GET /healthz` reports (with HTTP 503 when the status is not `ok`). */
export interface RelayHealth {
  /** `unavailable`: the relay cannot serve documents now (PostgreSQL is unreachable, or its lease lapsed). */
  status: 'ok' | 'unavailable'
  /** Why it is unavailable. */
  reason?: string
  /** Documents in memory. */
  documents: number
  /** Open client connections: native replicas and stock y-websocket clients (also those another relay passes through). */
  clients: number
  /** Links up to the other relays of the cluster (0 for a relay on its own). */
  relayLinks: number
}

/** A running relay. */
export interface Relay {
  /** Base WebSocket URL, e.g. `ws://127.0.0.1:4321`; documents live at `${url}/<docId>`. */
  readonly url: string
  /** The port actually bound. */
  readonly port: number
  /** The document registry (for inspection in tests and tools). */
  readonly registry: DocumentRegistry
  /** The cluster membership, if the relay is in a cluster on SQLite. */
  readonly clusterNode: ClusterNode | null
  /** The membership among relays on one PostgreSQL database, if the relay stores there. */
  readonly postgresNode: PostgresNode | null
  /** Current health figures. */
  health(): RelayHealth
  /** Stops accepting, closes every connection, commits what is queued, closes storage. */
  close(): Promise<void>
}

const DEFAULTS = {
  host: '127.0.0.1',
  port: 4321,
  dataDir: './petal-data',
  idleMs: 30_000,
  pingIntervalMs: 30_000
}

/** The database file of a relay whose data directory is `dataDir`. */
export const relayDatabasePath = (dataDir: string): string => join(dataDir, 'relay.db')

/** Starts a relay and resolves once it listens. */
export async function startRelay (options: RelayOptions = {}): Promise<Relay> {
  const log = options.logger ?? pino({ level: 'info' }, pino.destination(2))
  const limits: Limits = { ...DEFAULT_LIMITS, ...options.limits }
  const authenticator = options.authKeys === undefined || options.authKeys.size === 0 ? null : new Authenticator(options.authKeys)
  if (authenticator === null) log.warn('no auth secret configured: this relay is open to anyone who can reach it')
  if (limits.maxDocumentBytes > WS_CLIENT_MAX_PAYLOAD) {
    log.warn({ maxDocumentBytes: limits.maxDocumentBytes }, 'documents this large are sent in frames that Node ws clients refuse by default (100 MiB): they will not sync')
  }
  if (authenticator !== null && options.cluster !== undefined && (options.cluster.secret ?? '') === '') {
    throw new Error('a relay with client authentication in a cluster needs a cluster secret: without one, anyone could join as a relay')
  }
  if (options.postgres !== undefined && (options.cluster !== undefined || options.store !== undefined)) {
    throw new Error('a relay on PostgreSQL finds the other relays through the database: it takes neither a member list nor another store')
  }
  const storage = await openStorage(options, log)
  try {
    return await serve(options, log, limits, authenticator, storage)
  } catch (error) {
    await storage.store.close()
    await storage.database?.close()
    storage.lock?.release()
    throw error
  }
}

/** Where a relay keeps documents: a store, and what it holds while it runs. */
interface Storage {
  store: DocStore
  /** The data directory's lock (SQLite). */
  lock: DataDirLock | null
  /** The database shared with other relays (PostgreSQL), and this relay's place among them. */
  database: Database | null
  postgres: ((registry: DocumentRegistry, url: string) => PostgresNode) | null
}

/** Opens the storage `options` ask for; each kind's packages are loaded only when it is used. */
async function openStorage (options: RelayOptions, log: Logger): Promise<Storage> {
  const onCommit = (info: object): void => log.debug(info, 'commit')
  if (options.store !== undefined) return { store: options.store, lock: null, database: null, postgres: null }
  if (options.postgres !== undefined) {
    const { Database } = await import('./postgres/database.js')
    const { migrate } = await import('./postgres/schema.js')
    const { PostgresStore } = await import('./postgres/postgres-store.js')
    const { PostgresNode, DEFAULT_LEASE_MS } = await import('./postgres/postgres-node.js')
    const settings = options.postgres
    const database = new Database(settings.url, { log })
    try {
      await migrate(database)
    } catch (error) {
      await database.close()
      throw new Error(`cannot prepare the PostgreSQL database: ${(error as Error).message}`)
    }
    let node: PostgresNode | null = null
    const store = new PostgresStore(database, { onCommit, epochOf: docId => node?.epochOf(docId) ?? null })
    const leaseMs = settings.leaseMs ?? DEFAULT_LEASE_MS
    return {
      store,
      lock: null,
      database,
      postgres: (registry, url) => {
        node = new PostgresNode(database, { selfId: options.relayId ?? url, url: settings.advertiseUrl ?? url, leaseMs }, registry, log)
        return node
      }
    }
  }
  const dataDir = options.dataDir ?? DEFAULTS.dataDir
  const lock = lockDataDir(dataDir)
  try {
    const { SqliteStore } = await import('../shared/storage/sqlite-store.js')
    return { store: new SqliteStore(relayDatabasePath(dataDir), { onCommit }), lock, database: null, postgres: null }
  } catch (error) {
    lock.release()
    throw error
  }
}

/** The relay proper, on storage that is open (and a data directory that is held, if it has one). */
async function serve (options: RelayOptions, log: Logger, limits: Limits, authenticator: Authenticator | null, storage: Storage): Promise<Relay> {
  const { store, lock } = storage
  let clusterNode: ClusterNode | null = null
  let postgresNode: PostgresNode | null = null
  let node: RelayNode | null = null
  const registry = new DocumentRegistry({
    store,
    log,
    idleMs: options.idleMs ?? DEFAULTS.idleMs,
    onLoad: doc => node?.onLoad(doc),
    onEvict: doc => node?.onEvict(doc),
    ...(storage.postgres === null ? {} : { claim: (docId: DocId) => postgresNode!.claim(docId) }),
    limits,
    ...(options.compactMinBytes === undefined ? {} : { compactMinBytes: options.compactMinBytes })
  })
  if (options.cluster !== undefined) node = clusterNode = new ClusterNode(options.cluster, registry, log)
  let relayId = options.relayId ?? options.cluster?.selfId ?? ''
  const listener = await listen({
    host: options.host ?? DEFAULTS.host,
    port: options.port ?? DEFAULTS.port,
    ...(options.tls === undefined ? {} : { tls: options.tls }),
    ...(options.allowedOrigins === undefined ? {} : { allowedOrigins: options.allowedOrigins }),
    limits,
    authenticator,
    log,
    pingIntervalMs: options.pingIntervalMs ?? DEFAULTS.pingIntervalMs,
    ...(options.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: options.requestTimeoutMs }),
    onNative: link => {
      serveNativeLink(link, {
        registry,
        log,
        self: { peerId: relayId, durable: true },
        authenticator,
        maxDocs: limits.maxDocsPerConnection,
        ...(node === null ? {} : { routing: node.routing }),
        ...(node?.relayLinks === undefined ? {} : { relayLinks: node.relayLinks })
      })
    },
    onStock: (link, client) => {
      const homes = node?.proxyTargets(client.docId) ?? null
      if (homes !== null) return proxyYwsConnection(link, client.docId, client.query, homes, log)
      const host = registry.acquire(client.docId)
      host.catch((error: unknown) => {
        if (!(error instanceof MovedError)) log.error({ err: error, doc: client.docId }, 'document failed to load; refusing connections to it')
      })
      acceptStock(link, client, { host, release: () => registry.release(client.docId) }, authenticator, log)
    },
    onHttp: (req, res) => answerHttp(req, res, health)
  })
  const health = (): RelayHealth => {
    const links = node?.linkCounts ?? { up: 0, inbound: 0 }
    const reason = node?.unavailable ?? null
    return {
      status: reason === null ? 'ok' : 'unavailable',
      ...(reason === null ? {} : { reason }),
      documents: registry.size,
      clients: listener.connections - links.inbound,
      relayLinks: links.up
    }
  }
  const url = listener.url
  relayId ||= url
  clusterNode?.start(store, lock === null ? undefined : options.dataDir ?? DEFAULTS.dataDir)
  if (storage.postgres !== null) {
    node = postgresNode = storage.postgres(registry, url)
    try {
      await postgresNode.start()
    } catch (error) {
      await listener.close(0)
      throw new Error(`cannot register with the PostgreSQL database: ${(error as Error).message}`)
    }
  }

  let closing: Promise<void> | null = null
  return {
    url,
    port: listener.port,
    registry,
    clusterNode,
    postgresNode,
    health,
    close () {
      closing ??= (async () => {
        await clusterNode?.close()
        await listener.close(SHUTDOWN_GRACE_MS)
        registry.closeAll()
        await store.close()
        // After the last commit: the others take over at once, and load all of it.
        await postgresNode?.close()
        await storage.database?.close()
        lock?.release()
      })()
      return closing
    }
  }
}

/** How long shutdown waits for clients to answer the close handshake before cutting them off. */
const SHUTDOWN_GRACE_MS = 2000

function answerHttp (req: IncomingMessage, res: ServerResponse, health: () => RelayHealth): void {
  if (req.method === 'GET' && req.url === '/healthz') {
    const figures = health()
    res.writeHead(figures.status === 'ok' ? 200 : 503, { 'content-type': 'application/json' })
    res.end(JSON.stringify(figures))
    return
  }
  res.writeHead(426, { 'content-type': 'text/plain' })
  res.end('PetalDB relay: connect with a WebSocket to /<docId>, or GET /healthz\n')
}

export { docIdFromUrl } from '../shared/listen/admission.js'
