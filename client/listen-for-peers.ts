/**
 * `listenForPeers`: a Node replica accepts other replicas (and stock y-websocket clients)
 * on a WebSocket port and serves them any document they open, from its own store. It
 * admits and limits connections exactly as a relay does (same token rules, same limits,
 * same treatment of hostile input: the connection is closed and nothing is stored), but a
 * replica is not durable: its acknowledgements never make a peer's change durable.
 */
import { DEFAULT_LIMITS, type Limits } from '../shared/listen/limits.js'
import { Authenticator, parseAuthKeys } from '../shared/listen/auth.js'
import { listen } from '../shared/listen/listener.js'
import { silentLog, type Log } from '../shared/listen/log.js'
import { acceptNative } from '../shared/listen/native-accept.js'
import { PeerIds } from '../shared/listen/peer-ids.js'
import { acceptStock, type StockContext } from '../shared/listen/stock-accept.js'
import type { Replica } from './replica.js'

/** Options of {@link listenForPeers}. */
export interface ListenForPeersOptions {
  /** Interface to listen on. Default `127.0.0.1`. */
  host?: string
  /** Port; 0 (the default) picks a free one. */
  port?: number
  /**
   * Token keys, as for a relay's `--auth-secret`: `SECRET` or `KID=SECRET` (at least 16
   * characters). Peers then need a JWT (HS256) whose `read` / `write` claims cover the
   * documents they open. Without keys, any peer may read and write every document.
   */
  auth?: string[]
  /** Limits per connection and per document, as for a relay; see the README. */
  limits?: Partial<Limits>
  /** Browser origins allowed to connect; others get HTTP 403. Default: any. */
  allowedOrigins?: string[]
  /** PEM certificate and key: serve wss:// instead of ws://. */
  tls?: { cert: string | Buffer, key: string | Buffer }
  /** Where connection events are logged (pino fits). Default: nowhere. */
  log?: Log
}

/** A replica listening for peers. */
export interface PeerServer {
  /** The URL peers dial, e.g. `ws://127.0.0.1:PORT` (stock clients add `/<docId>`). */
  readonly url: string
  /** Stops listening and closes every peer's connection. */
  close(): Promise<void>
}

/**
 * Makes `replica` accept peers on a WebSocket port; see the module comment.
 *
 * ```ts
 * const server = await listenForPeers(replica, { host: '127.0.0.1', port: 0 })
 * const other = new Replica({ store: new SqliteStore('b.db'), peers: [server.url] })
 * ```
 */
export async function listenForPeers (replica: Replica, options: ListenForPeersOptions = {}): Promise<PeerServer> {
  const limits: Limits = { ...DEFAULT_LIMITS, ...options.limits }
  const keys = parseAuthKeys(options.auth ?? [])
  const authenticator = keys.size === 0 ? null : new Authenticator(keys)
  const log = options.log ?? silentLog
  const peerIds = new PeerIds()
  Object.assign(replica.docOptions, { awarenessLimits: limits, maxDocumentBytes: limits.maxDocumentBytes })
  const stock: StockContext = {
    // Stock clients' documents, held for them as for native peers (see `serveToPeer`).
    documents: { acquire: docId => replica.acquireForPeer(docId), release: docId => replica.releaseForPeer(docId) },
    authenticator,
    log
  }
  const listener = await listen({
    host: options.host ?? '127.0.0.1',
    port: options.port ?? 0,
    ...(options.tls === undefined ? {} : { tls: options.tls }),
    ...(options.allowedOrigins === undefined ? {} : { allowedOrigins: options.allowedOrigins }),
    limits,
    authenticator,
    log,
    pingIntervalMs: 30_000,
    onNative: link => {
      acceptNative(link, {
        self: replica.self,
        authenticator,
        log,
        maxDocs: limits.maxDocsPerConnection,
        // A replica wants to know what its peers hold (see `replica.peers()`).
        numbered: true,
        peerIds,
        serve: docId => replica.serveToPeer(docId)
      })
    },
    onStock: (link, client) => acceptStock(link, client, stock)
  })
  return {
    url: listener.url,
    close: () => listener.close()
  }
}
