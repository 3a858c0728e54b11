/**
 * The relay: an HTTP server that answers `GET /healthz` and upgrades WebSockets: the
 * `petaldb.v1` subprotocol to a native connection, `petaldb-relay.v1` to a link from
 * another relay of the cluster, and anything else to a y-websocket connection for the
 * document named by the path. Composition only: storage, the document registry, the
 * protocol handlers and the cluster are separate modules.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { pino, type Logger } from 'pino'
import { WebSocketServer, type WebSocket } from 'ws'
import { CloseCode } from '../shared/close-codes.js'
import { docIdProblem, type DocId } from '../shared/doc-id.js'
import { NATIVE_SUBPROTOCOL, RELAY_SUBPROTOCOL } from '../shared/native-messages.js'
import type { DocStore } from '../shared/store.js'
import { DocumentRegistry } from './registry.js'
import { SqliteStore } from '../client/sqlite-store.js'
import { closeWith } from './connections.js'
import { serveNativeLink } from './native-connection.js'
import { wsLink } from './ws-link.js'
import { serveYwsConnection } from './yws-connection.js'
import { proxyYwsConnection } from './yws-proxy.js'
import { ClusterNode } from './cluster-node.js'
import type { ClusterOptions } from './cluster.js'

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
  /** Largest accepted WebSocket frame, in bytes. Default 16 MiB. */
  maxFrameBytes?: number
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
  maxFrameBytes: 16 * 1024 * 1024,
  pingIntervalMs: 30_000
}

/** The database file of a relay whose data directory is `dataDir`. */
export const relayDatabasePath = (dataDir: string): string => join(dataDir, 'relay.db')

/** Starts a relay and resolves once it listens. */
export async function startRelay (options: RelayOptions = {}): Promise<Relay> {
  const log = options.logger ?? pino({ level: 'info' }, pino.destination(2))
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
    ...(options.compactMinBytes === undefined ? {} : { compactMinBytes: options.compactMinBytes })
  })
  if (options.cluster !== undefined) clusterNode = new ClusterNode(options.cluster, registry, log)
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: options.maxFrameBytes ?? DEFAULTS.maxFrameBytes,
    // Native clients ask for the PetalDB subprotocol; stock y-websocket clients ask for none.
    handleProtocols: protocols => [NATIVE_SUBPROTOCOL, RELAY_SUBPROTOCOL].find(p => protocols.has(p)) ?? false
  })
  const health = (): RelayHealth => ({ status: 'ok', documents: registry.size, connections: wss.clients.size })

  const http = createServer((req, res) => answerHttp(req, res, health))
  http.on('upgrade', (req, socket, head) => {
    socket.on('error', () => socket.destroy())
    wss.handleUpgrade(req, socket, head, ws => onConnection(ws, req))
  })

  const alive = new WeakSet<WebSocket>()
  let relayId = options.relayId ?? options.cluster?.selfId ?? ''
  const onConnection = (ws: WebSocket, req: IncomingMessage): void => {
    alive.add(ws)
    ws.on('pong', () => alive.add(ws))
    ws.on('error', error => log.debug({ err: error }, 'socket error'))
    const link = wsLink(ws)
    if (ws.protocol === NATIVE_SUBPROTOCOL) {
      return serveNativeLink(link, { registry, log, relayId, ...(clusterNode === null ? {} : { routing: clusterNode.routing }) })
    }
    if (ws.protocol === RELAY_SUBPROTOCOL) {
      if (clusterNode === null) return closeWith(link, CloseCode.badRequest, 'this relay is not in a cluster')
      return clusterNode.acceptPeer(link)
    }
    const docId = docIdFromUrl(req.url ?? '/')
    if (typeof docId !== 'string') {
      log.info({ url: req.url, reason: docId.problem }, 'rejected connection: bad document id')
      closeWith(link, CloseCode.badRequest, docId.problem)
      return
    }
    const targets = clusterNode?.proxyTargets(docId) ?? null
    if (targets !== null) return proxyYwsConnection(link, docId, queryOf(req.url ?? ''), targets, log)
    serveYwsConnection(link, docId, registry, log)
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
  const url = `ws://${host}:${address.port}`
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

function answerHttp (req: IncomingMessage, res: ServerResponse, health: () => RelayHealth): void {
  if (req.method === 'GET' && req.url === '/healthz') {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify(health()))
    return
  }
  res.writeHead(426, { 'content-type': 'text/plain' })
  res.end('PetalDB relay: connect with a WebSocket to /<docId>, or GET /healthz\n')
}

/** The query string of a request URL, with its `?`, or ''. */
function queryOf (url: string): string {
  const at = url.indexOf('?')
  return at === -1 ? '' : url.slice(at)
}

/** The document id in a request path (`/notes/1?token=...` → `notes/1`), or why it is invalid. */
export function docIdFromUrl (url: string): DocId | { problem: string } {
  const path = url.split('?', 1)[0]!.slice(1)
  let id: string
  try {
    id = decodeURIComponent(path)
  } catch {
    return { problem: 'document id is not valid percent-encoding' }
  }
  const problem = docIdProblem(id)
  return problem === null ? id as DocId : { problem }
}
