/**
 * The relay: a listener (see `shared/listen/`) whose plain HTTP answers `GET /healthz`,
 * `/metrics` and the document API, whose native connections (clients, and the other relays
 * of a cluster) and stock y-websocket connections are served from one document registry,
 * on one deployment (see `deployments/`), which decides where documents are stored and which
 * relay serves each. Composition only: it never asks which deployment it runs on.
 */
import type { Logger, pino as Pino } from 'pino'
import { requirePeer } from '../shared/node-peers.js'

const { pino } = requirePeer<{ pino: typeof Pino }>('pino', 'The relay')
import { MovedError } from '../shared/errors.js'
import { DocumentRegistry } from './documents/registry.js'
import { serveNativeLink } from './connections/native-connection.js'
import { proxyStockConnection } from './connections/stock-proxy.js'
import { Authenticator, type TokenVerifier } from '../shared/listen/auth.js'
import { callHook, hookVerifier, type RelayHooks } from './hooks.js'
import { Webhooks } from './webhooks.js'
import { acceptStock, type StockContext } from '../shared/listen/stock-accept.js'
import { DEFAULT_LIMITS, WS_CLIENT_MAX_PAYLOAD, type Limits } from '../shared/listen/limits.js'
import { listen } from '../shared/listen/listener.js'
import { PeerIds } from '../shared/listen/peer-ids.js'
import { BodyBudget } from './http/body-budget.js'
import { answerHttp } from './http/routes.js'
import { RelayMetrics } from './metrics.js'
import type { Link } from '../shared/transport/link.js'
import type { Deployment, LoadHealth } from './deployments/deployment.js'
import { openDeployment } from './deployments/open.js'
import type { RelayOptions } from './relay-options.js'

export type { RelayOptions } from './relay-options.js'

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
  /** Its load and the documents moved by load (relays on PostgreSQL only). */
  load?: LoadHealth
}

/** A running relay. */
export interface Relay {
  /** Base WebSocket URL, e.g. `ws://127.0.0.1:4321`; documents live at `${url}/<docId>`. */
  readonly url: string
  /** The port actually bound. */
  readonly port: number
  /** This relay's id among relays and to native clients. */
  readonly id: string
  /**
   * The relay's documents, for the app embedding it: read or change one in process
   * (`registry.with(docId, doc => ...)`, as the HTTP API does), or see which are in memory.
   */
  readonly registry: DocumentRegistry
  /** What the relay is, in words (`as r1 of a 3-relay cluster (data in ./d)`), for its first line on the console. */
  readonly role: string
  /** Current health figures. */
  health(): RelayHealth
  /** Stops accepting, closes every connection, commits what is queued, closes storage. */
  close(): Promise<void>
}

const DEFAULTS = {
  host: '127.0.0.1',
  port: 4321,
  idleMs: 30_000,
  pingIntervalMs: 30_000
}

/** Starts a relay and resolves once it listens. */
export async function startRelay (options: RelayOptions = {}): Promise<Relay> {
  const logger = options.logger ?? pino({ level: 'info' }, pino.destination(2))
  const limits: Limits = { ...DEFAULT_LIMITS, ...options.limits }
  const hooks = options.hooks ?? {}
  const authenticator: TokenVerifier | null = hooks.authenticate !== undefined
    ? hookVerifier(hooks.authenticate)
    : options.authKeys === undefined || options.authKeys.size === 0 ? null : new Authenticator(options.authKeys)
  if (authenticator === null) logger.warn('no auth secret configured: this relay is open to anyone who can reach it')
  if (limits.maxDocumentBytes > WS_CLIENT_MAX_PAYLOAD) {
    logger.warn({ maxDocumentBytes: limits.maxDocumentBytes }, 'documents this large are sent in frames that Node ws clients refuse by default (100 MiB): they will not sync')
  }
  if (limits.maxFrameBytes > Math.min(limits.maxBodyBytesPerIp, limits.maxBodyBytesTotal)) {
    logger.warn({ maxFrameBytes: limits.maxFrameBytes }, 'HTTP bodies as large as the largest frame cannot be held: the body limits refuse them (429 or 503)')
  }
  const metrics = new RelayMetrics()
  const deployment = await openDeployment(options, { authenticated: authenticator !== null }, logger, info => {
    logger.debug(info, 'commit')
    metrics.committed(info)
    callHook(hooks, 'store', info, logger)
  })
  const webhooks = options.webhooks === undefined || options.webhooks.urls.length === 0 ? null : new Webhooks({ ...options.webhooks, logger })
  try {
    return await serve(options, { logger, limits, authenticator, deployment, metrics, hooks, webhooks })
  } catch (error) {
    webhooks?.close()
    await deployment.close()
    throw error
  }
}

/** What {@link serve} composes, made by {@link startRelay}. */
interface Parts {
  logger: Logger
  limits: Limits
  authenticator: TokenVerifier | null
  deployment: Deployment
  metrics: RelayMetrics
  hooks: RelayHooks
  webhooks: Webhooks | null
}

/** The relay proper, on its parts. */
async function serve (options: RelayOptions, parts: Parts): Promise<Relay> {
  const { logger, limits, authenticator, deployment, metrics, hooks, webhooks } = parts
  const { documents } = deployment
  const counted = documents.received
  const registry = new DocumentRegistry({
    store: deployment.store,
    logger,
    observer: {
      received: counted === undefined
        ? (source, bytes) => metrics.received(source, bytes)
        : (source, bytes, docId) => {
            metrics.received(source, bytes)
            counted(docId, bytes)
          },
      replicated: seconds => metrics.replicated(seconds),
      durable: event => {
        metrics.durable(event)
        callHook(hooks, 'change', { docId: event.docId, update: event.update, source: event.source }, logger)
        // Where every home stores each change, only the relay it came to calls the webhooks.
        if (event.source !== 'relay') webhooks?.changed(event.docId)
      }
    },
    idleMs: options.idleMs ?? DEFAULTS.idleMs,
    ...(documents.claim === undefined ? {} : { claim: documents.claim }),
    ...(documents.gate === undefined ? {} : { gate: documents.gate }),
    onLoad: doc => {
      documents.onLoad?.(doc)
      callHook(hooks, 'load', { docId: doc.docId }, logger)
    },
    ...(documents.onEvict === undefined ? {} : { onEvict: documents.onEvict }),
    onDelete: (docId, deletedAt) => {
      documents.onDelete?.(docId, deletedAt)
      callHook(hooks, 'delete', { docId }, logger)
      webhooks?.changed(docId)
    },
    limits,
    ...(options.compactMinBytes === undefined ? {} : { compactMinBytes: options.compactMinBytes })
  })
  const open = new OpenConnections()
  deployment.attach(registry, { connections: () => open.native + open['y-websocket'] })
  // A deletion cut short (a crash before its erasure) is finished before anything is served.
  await registry.resumeErasure().catch((error: unknown) => logger.error({ err: error }, 'could not finish erasing deleted documents'))
  const peerIds = new PeerIds()
  const stock: StockContext = {
    // Every stock connection gets its document from the registry, which says why a load failed.
    documents: {
      acquire: docId => {
        const host = registry.acquire(docId)
        host.catch((error: unknown) => {
          if (!(error instanceof MovedError)) logger.error({ err: error, doc: docId }, 'document failed to load; refusing connections to it')
        })
        return host
      },
      release: docId => registry.release(docId)
    },
    authenticator,
    logger,
    onClosed: open.stockClosed
  }
  const bodies = new BodyBudget(limits)
  // Known once the listener is bound (the relay's id defaults to its URL).
  let self = { id: '', url: '' }
  const listener = await listen({
    host: options.host ?? DEFAULTS.host,
    port: options.port ?? DEFAULTS.port,
    ...(options.tls === undefined ? {} : { tls: options.tls }),
    ...(options.allowedOrigins === undefined ? {} : { allowedOrigins: options.allowedOrigins }),
    limits,
    authenticator,
    logger,
    pingIntervalMs: options.pingIntervalMs ?? DEFAULTS.pingIntervalMs,
    ...(options.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: options.requestTimeoutMs }),
    onClosed: code => metrics.closed(code),
    onNative: link => {
      const { routing, relayPeers } = deployment
      serveNativeLink(link, {
        registry,
        logger,
        self: { peerId: self.id, isRelay: true },
        authenticator,
        maxDocs: limits.maxDocsPerConnection,
        peerIds,
        ...(routing === null ? {} : { routing }),
        ...(relayPeers === null ? {} : { relayPeers })
      })
      open.track(link, 'native')
    },
    onStock: (link, client) => {
      const homes = deployment.proxyTargets(client.docId)
      if (homes !== null) {
        proxyStockConnection(link, client.docId, client.query, homes, logger)
        open.track(link, 'y-websocket')
      } else {
        open['y-websocket']++
        acceptStock(link, client, stock)
      }
    },
    onHttp: (req, res) => answerHttp(req, res, {
      health,
      metrics,
      docsApi: { registry, list: prefix => deployment.store.list(prefix), authenticator, limits, bodies, logger, cluster: deployment.docsRouting(self) },
      allowedOrigins: options.allowedOrigins
    })
  })
  self = { id: deployment.relayId(listener.url), url: listener.url }
  const health = (): RelayHealth => {
    const { unavailable, relayLinks, load } = deployment.health()
    return {
      status: unavailable === null ? 'ok' : 'unavailable',
      ...(unavailable === null ? {} : { reason: unavailable }),
      documents: registry.size,
      clients: listener.connections - relayLinks.inbound,
      relayLinks: relayLinks.up,
      ...(load === undefined ? {} : { load })
    }
  }
  metrics.gaugesFrom(() => {
    const { relayLinks, members, load } = deployment.health()
    return {
      ...(load === undefined ? {} : { load }),
      // Links other relays dialed arrive as native connections.
      connections: { native: open.native - relayLinks.inbound, 'y-websocket': open['y-websocket'], relay: relayLinks.up },
      documents: registry.size,
      bodyBytes: bodies.held,
      members,
      webhooks: webhooks?.deliveries ?? null
    }
  })
  try {
    await deployment.start(listener.url)
  } catch (error) {
    await listener.close(0)
    throw error
  }

  let closing: Promise<void> | null = null
  return {
    url: listener.url,
    port: listener.port,
    id: self.id,
    registry,
    role: deployment.describe(),
    health,
    close () {
      closing ??= (async () => {
        webhooks?.close()
        await deployment.stop()
        await listener.close(SHUTDOWN_GRACE_MS)
        registry.closeAll()
        await deployment.close()
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

export { docIdFromUrl } from '../shared/listen/admission.js'
