/**
 * The relay: a listener (see `shared/listen/`) whose plain HTTP answers `GET /healthz`,
 * whose native connections (clients and the other relays of a cluster) and stock
 * y-websocket connections are served from one document registry. Composition only:
 * storage, the registry, the protocol handlers and the cluster are separate modules.
 */
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
import { Authenticator, type TokenVerifier } from '../shared/listen/auth.js'
import { callHook, hookVerifier, type RelayHooks } from './hooks.js'
import { Webhooks, type WebhookOptions } from './webhooks.js'
import { acceptStock, type StockContext } from '../shared/listen/stock-accept.js'
import { DEFAULT_LIMITS, WS_CLIENT_MAX_PAYLOAD, type Limits } from '../shared/listen/limits.js'
import { listen } from '../shared/listen/listener.js'
import { PeerIds } from '../shared/listen/peer-ids.js'
import type { ClusterOptions } from './cluster/cluster.js'
import { lockDataDir, type DataDirLock } from './data-dir.js'
import type { RelayNode } from './relay-node.js'
import type { PostgresNode, PostgresOptions } from './postgres/postgres-node.js'
import type { Database } from './postgres/database.js'
import type { DocsApiContext } from './http/docs-api.js'
import { BodyBudget } from './http/body-budget.js'
import { answerHttp } from './http/routes.js'
import { RelayMetrics, type RelayGauges } from './metrics.js'
import type { Link } from '../shared/transport/link.js'
import type { CommitInfo } from '../shared/storage/batched-store.js'
import type { ClusterMember } from '../shared/placement.js'

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
  /**
   * Milliseconds a connection may take to send its request's headers (an upgrade, or HTTP);
   * also the window over which an HTTP body's pace is counted (see `minBodyBytesPerSecond`).
   * Default 10 000.
   */
  requestTimeoutMs?: number
  /** This relay's id, sent to native clients and, with `postgres`, its id among the relays on the database. Default: its cluster id, else its URL. */
  relayId?: string
  /** Cluster membership; without it the relay stands alone. */
  cluster?: ClusterOptions
  /** Logger; default a pino logger at level `info` on stderr. */
  logger?: Logger
  /** Hooks for the app embedding the relay; see {@link RelayHooks}. */
  hooks?: RelayHooks
  /** POST `{ docId, updatedAt }` to these URLs after changes (and deletions); see `webhooks.ts`. */
  webhooks?: Omit<WebhookOptions, 'log'>
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
  const hooks = options.hooks ?? {}
  const authenticator: TokenVerifier | null = hooks.authenticate !== undefined
    ? hookVerifier(hooks.authenticate)
    : options.authKeys === undefined || options.authKeys.size === 0 ? null : new Authenticator(options.authKeys)
  if (authenticator === null) log.warn('no auth secret configured: this relay is open to anyone who can reach it')
  if (limits.maxDocumentBytes > WS_CLIENT_MAX_PAYLOAD) {
    log.warn({ maxDocumentBytes: limits.maxDocumentBytes }, 'documents this large are sent in frames that Node ws clients refuse by default (100 MiB): they will not sync')
  }
  if (limits.maxFrameBytes > Math.min(limits.maxBodyBytesPerIp, limits.maxBodyBytesTotal)) {
    log.warn({ maxFrameBytes: limits.maxFrameBytes }, 'HTTP bodies as large as the largest frame cannot be held: the body limits refuse them (429 or 503)')
  }
  if (authenticator !== null && options.cluster !== undefined && (options.cluster.secret ?? '') === '') {
    throw new Error('a relay with client authentication in a cluster needs a cluster secret: without one, anyone could join as a relay')
  }
  if (options.postgres !== undefined && (options.cluster !== undefined || options.store !== undefined)) {
    throw new Error('a relay on PostgreSQL finds the other relays through the database: it takes neither a member list nor another store')
  }
  let gauges: () => RelayGauges = () => ({ connections: { native: 0, 'y-websocket': 0, relay: 0 }, documents: 0, bodyBytes: 0, members: null, webhooks: null })
  const metrics = new RelayMetrics(() => gauges())
  const storage = await openStorage(options, log, info => {
    log.debug(info, 'commit')
    metrics.committed(info)
    callHook(hooks, 'store', info, log)
  })
  const webhooks = options.webhooks === undefined || options.webhooks.urls.length === 0 ? null : new Webhooks({ ...options.webhooks, log })
  try {
    return await serve(options, { log, limits, authenticator, storage, metrics, hooks, webhooks }, read => { gauges = read })
  } catch (error) {
    webhooks?.close()
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
async function openStorage (options: RelayOptions, log: Logger, onCommit: (info: CommitInfo) => void): Promise<Storage> {
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
    return { store: new SqliteStore(relayDatabasePath(dataDir), { onCommit, secureDelete: true }), lock, database: null, postgres: null }
  } catch (error) {
    lock.release()
    throw error
  }
}

/** What {@link serve} composes, made by {@link startRelay}. */
interface Parts {
  log: Logger
  limits: Limits
  authenticator: TokenVerifier | null
  /** Open storage. */
  storage: Storage
  metrics: RelayMetrics
  hooks: RelayHooks
  webhooks: Webhooks | null
}

/** The relay proper, on its parts. */
async function serve (options: RelayOptions, parts: Parts, reportGauges: (read: () => RelayGauges) => void): Promise<Relay> {
  const { log, limits, authenticator, storage, metrics, hooks, webhooks } = parts
  const { store, lock } = storage
  let clusterNode: ClusterNode | null = null
  let postgresNode: PostgresNode | null = null
  let node: RelayNode | null = null
  const registry = new DocumentRegistry({
    store,
    log,
    observer: {
      received: (source, bytes) => metrics.received(source, bytes),
      replicated: seconds => metrics.replicated(seconds),
      durable: event => {
        metrics.durable(event)
        callHook(hooks, 'change', { docId: event.docId, update: event.update, source: event.source }, log)
        // In a cluster every home stores each change: only the relay it came to calls the webhooks.
        if (event.source !== 'relay') webhooks?.changed(event.docId)
      }
    },
    idleMs: options.idleMs ?? DEFAULTS.idleMs,
    onLoad: doc => {
      node?.onLoad(doc)
      callHook(hooks, 'load', { docId: doc.docId }, log)
    },
    onEvict: doc => node?.onEvict(doc),
    onDelete: (docId, deletedAt) => {
      clusterNode?.onDelete(docId, deletedAt)
      callHook(hooks, 'delete', { docId }, log)
      webhooks?.changed(docId)
    },
    ...(storage.postgres === null ? {} : { claim: (docId: DocId) => postgresNode!.claim(docId) }),
    ...(options.cluster === undefined ? {} : { gate: { ready: (docId: DocId) => clusterNode!.gate.ready(docId), whenReady: (docId: DocId) => clusterNode!.gate.whenReady(docId) } }),
    limits,
    ...(options.compactMinBytes === undefined ? {} : { compactMinBytes: options.compactMinBytes })
  })
  if (options.cluster !== undefined) node = clusterNode = new ClusterNode(options.cluster, registry, store, log)
  // A deletion cut short (a crash before its erasure) is finished before anything is served.
  await registry.resumeErasure().catch((error: unknown) => log.error({ err: error }, 'could not finish erasing deleted documents'))
  let relayId = options.relayId ?? options.cluster?.selfId ?? ''
  const open = new OpenConnections()
  const peerIds = new PeerIds()
  const stock: StockContext = {
    // Every stock connection gets its document from the registry, which says why a load failed.
    documents: {
      acquire: docId => {
        const host = registry.acquire(docId)
        host.catch((error: unknown) => {
          if (!(error instanceof MovedError)) log.error({ err: error, doc: docId }, 'document failed to load; refusing connections to it')
        })
        return host
      },
      release: docId => registry.release(docId)
    },
    authenticator,
    log,
    onClosed: open.stockClosed
  }
  const bodies = new BodyBudget(limits)
  const docsApi: DocsApiContext = {
    registry,
    list: prefix => store.list(prefix),
    authenticator,
    limits,
    bodies,
    log,
    cluster: null // set once the relay knows its URL (see below)
  }
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
    onClosed: code => metrics.closed(code),
    onNative: link => {
      serveNativeLink(link, {
        registry,
        log,
        self: { peerId: relayId, durable: true },
        authenticator,
        maxDocs: limits.maxDocsPerConnection,
        peerIds,
        ...(node === null ? {} : { routing: node.routing }),
        ...(node?.relayLinks === undefined ? {} : { relayLinks: node.relayLinks })
      })
      open.track(link, 'native')
    },
    onStock: (link, client) => {
      const homes = node?.proxyTargets(client.docId) ?? null
      if (homes !== null) {
        proxyYwsConnection(link, client.docId, client.query, homes, log)
        open.track(link, 'y-websocket')
      } else {
        open['y-websocket']++
        acceptStock(link, client, stock)
      }
    },
    onHttp: (req, res) => answerHttp(req, res, { health, metrics, docsApi, allowedOrigins: options.allowedOrigins })
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
  reportGauges(() => {
    const links = node?.linkCounts ?? { up: 0, inbound: 0 }
    const members = clusterNode?.cluster.members.length ?? postgresNode?.membership.members.length ?? null
    return {
      // Links other relays dialed arrive as native connections.
      connections: { native: open.native - links.inbound, 'y-websocket': open['y-websocket'], relay: links.up },
      documents: registry.size,
      bodyBytes: bodies.held,
      members: members === null ? null : { total: members, linked: clusterNode === null ? members : links.up + 1 },
      webhooks: webhooks?.deliveries ?? null
    }
  })
  clusterNode?.start(lock === null ? undefined : options.dataDir ?? DEFAULTS.dataDir)
  if (storage.postgres !== null) {
    node = postgresNode = storage.postgres(registry, url)
    try {
      await postgresNode.start()
    } catch (error) {
      await listener.close(0)
      throw new Error(`cannot register with the PostgreSQL database: ${(error as Error).message}`)
    }
  }
  docsApi.cluster = documentRouting(clusterNode, postgresNode, { id: relayId, url })

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
        webhooks?.close()
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

/** Open connections by protocol, counted as they open and close. */
class OpenConnections {
  native = 0
  'y-websocket' = 0

  /** Counts `link` until it closes (call once its handler has set its close callback). */
  track (link: Link, kind: 'native' | 'y-websocket'): void {
    this[kind]++
    const onClose = link.onClose
    link.onClose = (code, reason) => {
      this[kind]--
      onClose.call(link, code, reason)
    }
  }

  /** A stock connection counted by the caller closed (one function for all: a relay may serve thousands). */
  readonly stockClosed = (): void => {
    this['y-websocket']--
  }
}

/**
 * Where the document API finds a document: in the SQLite cluster on its homes (listings
 * merged from every relay); on PostgreSQL at the relay serving it (listings from the
 * shared database, which has every document).
 */
function documentRouting (cluster: ClusterNode | null, postgres: PostgresNode | null, self: ClusterMember): DocsApiContext['cluster'] {
  if (cluster !== null) {
    return { homesOf: docId => cluster.cluster.homesOf(docId), listFrom: cluster.cluster.members, selfId: cluster.cluster.selfId }
  }
  if (postgres !== null) {
    return { homesOf: docId => postgres.proxyTargets(docId)?.slice(0, 1) ?? [self], listFrom: null, selfId: self.id }
  }
  return null
}

export { docIdFromUrl } from '../shared/listen/admission.js'
