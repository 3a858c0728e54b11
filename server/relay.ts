/**
 * The relay: a listener (see `shared/listen/`) whose plain HTTP answers `GET /healthz`,
 * whose native connections (clients and the other relays of a cluster) and stock
 * y-websocket connections are served from one document registry. Composition only:
 * storage, the registry, the protocol handlers and the cluster are separate modules.
 */
import { join } from 'node:path'
import type { Logger, pino as Pino } from 'pino'
import { requirePeer } from '../shared/node-peers.js'

const { pino } = requirePeer<{ pino: typeof Pino }>('pino', 'The relay')
import type { DocStore } from '../shared/storage/store.js'
import { DocumentRegistry } from './documents/registry.js'
import { SqliteStore } from '../shared/storage/sqlite-store.js'
import { serveNativeLink } from './connections/native-connection.js'
import { proxyYwsConnection } from './cluster/yws-proxy.js'
import { ClusterNode } from './cluster/cluster-node.js'
import { Authenticator, type TokenVerifier } from '../shared/listen/auth.js'
import { callHook, hookVerifier, type RelayHooks } from './hooks.js'
import { Webhooks, type WebhookOptions } from './webhooks.js'
import { acceptStock } from '../shared/listen/stock-accept.js'
import { DEFAULT_LIMITS, WS_CLIENT_MAX_PAYLOAD, type Limits } from '../shared/listen/limits.js'
import { listen } from '../shared/listen/listener.js'
import type { ClusterOptions } from './cluster/cluster.js'
import { lockDataDir, type DataDirLock } from './data-dir.js'
import type { DocsApiContext } from './http/docs-api.js'
import { answerHttp } from './http/routes.js'
import { RelayMetrics, type RelayGauges } from './metrics.js'
import type { Link } from '../shared/transport/link.js'

/** Options of {@link startRelay}; every field has a default. */
export interface RelayOptions {
  /** Interface to listen on. Default `127.0.0.1`. */
  host?: string
  /** Port to listen on; 0 picks a free one. Default 4321. */
  port?: number
  /** Directory of the SQLite database, used when no `store` is given. Default `./petal-data`. */
  dataDir?: string
  /** Storage to use instead of the SQLite database in `dataDir`. The relay closes it on {@link Relay.close}. */
  store?: DocStore
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
  /** This relay's id, sent to native clients. Default: its cluster id, else its URL. */
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

/** What `GET /healthz` reports. */
export interface RelayHealth {
  status: 'ok'
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
  /** The cluster membership, if the relay is in a cluster. */
  readonly clusterNode: ClusterNode | null
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
  if (authenticator !== null && options.cluster !== undefined && (options.cluster.secret ?? '') === '') {
    throw new Error('a relay with client authentication in a cluster needs a cluster secret: without one, anyone could join as a relay')
  }
  const dataDir = options.dataDir ?? DEFAULTS.dataDir
  const lock = options.store === undefined ? lockDataDir(dataDir) : null
  let gauges: () => RelayGauges = () => ({ connections: { native: 0, 'y-websocket': 0, relay: 0 }, documents: 0, members: null })
  const metrics = new RelayMetrics(() => gauges())
  const store = options.store ?? new SqliteStore(relayDatabasePath(dataDir), {
    onCommit: info => {
      log.debug(info, 'commit')
      metrics.committed(info)
      callHook(hooks, 'store', info, log)
    },
    secureDelete: true
  })
  const webhooks = options.webhooks === undefined || options.webhooks.urls.length === 0 ? null : new Webhooks({ ...options.webhooks, log })
  try {
    return await serve(options, { log, limits, authenticator, store, lock, metrics, hooks, webhooks }, read => { gauges = read })
  } catch (error) {
    webhooks?.close()
    await store.close()
    lock?.release()
    throw error
  }
}

/** What {@link serve} composes, made by {@link startRelay}. */
interface Parts {
  log: Logger
  limits: Limits
  authenticator: TokenVerifier | null
  /** Open storage. */
  store: DocStore
  /** The held data directory, if the relay has one. */
  lock: DataDirLock | null
  metrics: RelayMetrics
  hooks: RelayHooks
  webhooks: Webhooks | null
}

/** The relay proper, on its parts. */
async function serve (options: RelayOptions, parts: Parts, reportGauges: (read: () => RelayGauges) => void): Promise<Relay> {
  const { log, limits, authenticator, store, lock, metrics, hooks, webhooks } = parts
  let clusterNode: ClusterNode | null = null
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
      clusterNode?.onLoad(doc)
      callHook(hooks, 'load', { docId: doc.docId }, log)
    },
    onEvict: doc => clusterNode?.onEvict(doc),
    onDelete: docId => {
      callHook(hooks, 'delete', { docId }, log)
      webhooks?.changed(docId)
    },
    limits,
    ...(options.compactMinBytes === undefined ? {} : { compactMinBytes: options.compactMinBytes })
  })
  if (options.cluster !== undefined) clusterNode = new ClusterNode(options.cluster, registry, log)
  let relayId = options.relayId ?? options.cluster?.selfId ?? ''
  const open = new OpenConnections()
  const cluster = clusterNode?.cluster ?? null
  const docsApi: DocsApiContext = {
    registry,
    list: prefix => store.list(prefix),
    authenticator,
    limits,
    log,
    cluster: cluster === null ? null : { homesOf: docId => cluster.homesOf(docId), members: cluster.members, selfId: cluster.selfId }
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
        ...(clusterNode === null ? {} : { routing: clusterNode.routing, relayLinks: clusterNode.relayLinks })
      })
      open.track(link, 'native')
    },
    onStock: (link, client) => {
      const homes = clusterNode?.proxyTargets(client.docId) ?? null
      if (homes !== null) proxyYwsConnection(link, client.docId, client.query, homes, log)
      else {
        const host = registry.acquire(client.docId)
        host.catch((error: unknown) => log.error({ err: error, doc: client.docId }, 'document failed to load; refusing connections to it'))
        acceptStock(link, client, { host, release: () => registry.release(client.docId) }, authenticator, log)
      }
      open.track(link, 'y-websocket')
    },
    onHttp: (req, res) => answerHttp(req, res, { health, metrics, docsApi, allowedOrigins: options.allowedOrigins })
  })
  const health = (): RelayHealth => {
    const links = clusterNode?.linkCounts ?? { up: 0, inbound: 0 }
    return { status: 'ok', documents: registry.size, clients: listener.connections - links.inbound, relayLinks: links.up }
  }
  reportGauges(() => {
    const links = clusterNode?.linkCounts ?? { up: 0, inbound: 0 }
    return {
      // Links other relays dialed arrive as native connections.
      connections: { native: open.native - links.inbound, 'y-websocket': open['y-websocket'], relay: links.up },
      documents: registry.size,
      members: cluster === null ? null : { total: cluster.members.length, linked: links.up + 1 }
    }
  })
  const url = listener.url
  relayId ||= url
  clusterNode?.start(store, lock === null ? undefined : options.dataDir ?? DEFAULTS.dataDir)

  let closing: Promise<void> | null = null
  return {
    url,
    port: listener.port,
    registry,
    clusterNode,
    health,
    close () {
      closing ??= (async () => {
        webhooks?.close()
        await clusterNode?.close()
        await listener.close(SHUTDOWN_GRACE_MS)
        registry.closeAll()
        await store.close()
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
      onClose(code, reason)
    }
  }
}

export { docIdFromUrl } from '../shared/listen/admission.js'
