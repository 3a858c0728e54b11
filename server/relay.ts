/**
 * The relay: an HTTP server that answers `GET /healthz` and upgrades WebSockets: the
 * `petaldb.v1` subprotocol to a native connection, `petaldb-relay.v1` to a link from
 * another relay of the cluster, and anything else to a y-websocket connection for the
 * document named by the path. Composition only: storage, the document registry, the
 * protocol handlers and the cluster are separate modules.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { Duplex } from 'node:stream'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { pino, type Logger } from 'pino'
import { WebSocketServer, type WebSocket } from 'ws'
import { CloseCode } from '../shared/wire/close-codes.js'
import { NATIVE_SUBPROTOCOL } from '../shared/wire/native-messages.js'
import type { DocStore } from '../shared/storage/store.js'
import { DocumentRegistry } from './documents/registry.js'
import { SqliteStore } from '../shared/storage/sqlite-store.js'
import { closeWith } from './connections/closing.js'
import { serveNativeLink } from './connections/native-connection.js'
import { wsLink } from './connections/ws-link.js'
import { serveYwsConnection } from './connections/yws-connection.js'
import { proxyYwsConnection } from './cluster/yws-proxy.js'
import { ClusterNode } from './cluster/cluster-node.js'
import { admitStockClient, originAllowed, type StockAdmission } from './connections/admission.js'
import { Authenticator } from './connections/auth.js'
import { ConnectionAuth } from './connections/connection-auth.js'
import { DEFAULT_LIMITS, type Limits } from './connections/limits.js'
import type { ClusterOptions } from './cluster/cluster.js'

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
  /** This relay's id, sent to native clients. Default: its cluster id, else its URL. */
  relayId?: string
  /** Cluster membership; without it the relay stands alone. */
  cluster?: ClusterOptions
  /** Logger; default a pino logger at level `info` on stderr. */
  logger?: Logger
}

/** What `GET /healthz` reports. */
export interface RelayHealth {
  status: 'ok'
  /** Documents in memory. */
  documents: number
  /** Open WebSocket connections. */
  connections: number
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
  /** Stops accepting, closes every connection, commits pending writes, closes storage. */
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
  if (authenticator !== null && options.cluster !== undefined && (options.cluster.secret ?? '') === '') {
    throw new Error('a relay with client authentication in a cluster needs a cluster secret: without one, anyone could join as a relay')
  }
  const store = options.store ?? new SqliteStore(relayDatabasePath(options.dataDir ?? DEFAULTS.dataDir), {
    onCommit: info => log.debug(info, 'commit')
  })
  let clusterNode: ClusterNode | null = null
  const registry = new DocumentRegistry({
    store,
    log,
    idleMs: options.idleMs ?? DEFAULTS.idleMs,
    onLoad: doc => clusterNode?.onLoad(doc),
    onEvict: doc => clusterNode?.onEvict(doc),
    limits,
    ...(options.compactMinBytes === undefined ? {} : { compactMinBytes: options.compactMinBytes })
  })
  if (options.cluster !== undefined) clusterNode = new ClusterNode(options.cluster, registry, log)
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: limits.maxFrameBytes,
    // Native clients ask for the PetalDB subprotocol; stock y-websocket clients ask for none.
    handleProtocols: protocols => protocols.has(NATIVE_SUBPROTOCOL) ? NATIVE_SUBPROTOCOL : false
  })
  const health = (): RelayHealth => ({ status: 'ok', documents: registry.size, connections: wss.clients.size })

  const answer = (req: IncomingMessage, res: ServerResponse): void => answerHttp(req, res, health)
  const http = options.tls === undefined ? createServer(answer) : createHttpsServer(options.tls, answer)
  http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', destroySocket)
    if (!originAllowed(req, options.allowedOrigins)) {
      log.info({ origin: req.headers.origin }, 'rejected connection: origin not allowed')
      socket.end('HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\n')
      return
    }
    const stock = !req.headers['sec-websocket-protocol']?.split(',').some(p => p.trim() === NATIVE_SUBPROTOCOL)
    const admission = stock ? admitStockClient(req.url ?? '/', authenticator) : Promise.resolve(null)
    admission.then(verdict => wss.handleUpgrade(req, socket, head, ws => {
      socket.off('error', destroySocket) // ws handles socket errors from here on
      onConnection(ws, req, verdict)
    })).catch((error: unknown) => {
      log.error({ err: error }, 'upgrade failed')
      socket.destroy()
    })
  })

  const alive = new WeakSet<WebSocket>()
  const perIp = new Map<string, number>()
  let relayId = options.relayId ?? options.cluster?.selfId ?? ''
  // Listeners shared by every socket (a closure per socket would cost memory per connection).
  function markAlive (this: WebSocket): void {
    alive.add(this)
  }
  const logSocketError = (error: Error): void => log.debug({ err: error }, 'socket error')
  const onConnection = (ws: WebSocket, req: IncomingMessage, verdict: StockAdmission | null): void => {
    alive.add(ws)
    ws.on('pong', markAlive)
    ws.on('error', logSocketError)
    const link = wsLink(ws, limits, log)
    const ip = req.socket.remoteAddress ?? ''
    const count = (perIp.get(ip) ?? 0) + 1
    perIp.set(ip, count)
    ws.once('close', () => {
      const left = perIp.get(ip)! - 1
      if (left === 0) perIp.delete(ip)
      else perIp.set(ip, left)
    })
    if (count > limits.maxConnectionsPerIp) {
      return closeWith(link, CloseCode.tryAgainLater, `more than ${limits.maxConnectionsPerIp} connections from one address`)
    }
    if (ws.protocol === NATIVE_SUBPROTOCOL) {
      serveNativeLink(link, {
        registry,
        log,
        self: { peerId: relayId, durable: true },
        authenticator,
        maxDocs: limits.maxDocsPerConnection,
        ...(clusterNode === null ? {} : { routing: clusterNode.routing, relayLinks: clusterNode.relayLinks })
      })
      return
    }
    if (verdict === null || !verdict.ok) {
      const { code, reason } = verdict ?? { code: CloseCode.badRequest, reason: 'bad request' }
      log.info({ url: req.url?.split('?', 1)[0], reason }, 'rejected connection')
      return closeWith(link, code, reason)
    }
    const targets = clusterNode?.proxyTargets(verdict.docId) ?? null
    if (targets !== null) return proxyYwsConnection(link, verdict.docId, verdict.query, targets, log)
    const auth = new ConnectionAuth(authenticator, () => {})
    auth.adopt(verdict.grant)
    serveYwsConnection(link, verdict.docId, registry, log, auth)
  }

  const pinger = setInterval(() => {
    for (const ws of wss.clients) {
      if (!alive.has(ws)) { ws.terminate(); continue }
      alive.delete(ws)
      ws.ping()
    }
  }, options.pingIntervalMs ?? DEFAULTS.pingIntervalMs)
  pinger.unref()

  await new Promise<void>((resolve, reject) => {
    http.once('error', reject)
    http.listen(options.port ?? DEFAULTS.port, options.host ?? DEFAULTS.host, () => {
      http.off('error', reject)
      resolve()
    })
  })
  const address = http.address() as AddressInfo
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
  const url = `${options.tls === undefined ? 'ws' : 'wss'}://${host}:${address.port}`
  relayId ||= url
  clusterNode?.start(store, options.store === undefined ? options.dataDir ?? DEFAULTS.dataDir : undefined)

  let closing: Promise<void> | null = null
  return {
    url,
    port: address.port,
    registry,
    clusterNode,
    health,
    close () {
      closing ??= (async () => {
        clearInterval(pinger)
        const stopped = new Promise<void>(resolve => http.close(() => resolve()))
        http.closeIdleConnections()
        await clusterNode?.close()
        await closeClients(wss, SHUTDOWN_GRACE_MS)
        registry.closeAll()
        await store.close()
        await stopped
      })()
      return closing
    }
  }
}

/** How long shutdown waits for clients to answer the close handshake before cutting them off. */
const SHUTDOWN_GRACE_MS = 2000

async function closeClients (wss: WebSocketServer, graceMs: number): Promise<void> {
  const closed = [...wss.clients].map(ws => new Promise(resolve => {
    ws.once('close', resolve)
    closeWith(ws, CloseCode.goingAway, 'relay shutting down')
  }))
  const timer = new Promise(resolve => setTimeout(resolve, graceMs).unref())
  await Promise.race([Promise.all(closed), timer])
  for (const ws of wss.clients) ws.terminate()
}

/** A socket error before or during the upgrade just drops the socket (a module-level function, so the listener holds no request). */
function destroySocket (this: Duplex): void {
  this.destroy()
}

function answerHttp (req: IncomingMessage, res: ServerResponse, health: () => RelayHealth): void {
  if (req.method === 'GET' && req.url === '/healthz') {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify(health()))
    return
  }
  res.writeHead(426, { 'content-type': 'text/plain' })
  res.end('PetalDB relay: connect with a WebSocket to /<docId>, or GET /healthz\n')
}

export { docIdFromUrl } from './connections/admission.js'
