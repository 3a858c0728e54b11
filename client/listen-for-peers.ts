/**
 * `listenForPeers`: a Node replica accepts other replicas (and stock y-websocket clients)
 * on a WebSocket port and serves them any document they open, from its own store. It
 * admits and limits connections exactly as a relay does (same token rules, same limits,
 * same treatment of hostile input: the connection is closed and nothing is stored), but a
 * replica is not durable: its acknowledgements never make a peer's change durable. What a
 * peer writes reaches this replica's relays under this replica's token, so a listener with
 * no token keys of its own (open to any peer that reaches its port) must be asked for.
 */
import { DEFAULT_LIMITS, type Limits } from '../shared/listen/limits.js'
import { Authenticator, parseAuthKeys } from '../shared/listen/auth.js'
import { listen } from '../shared/listen/listener.js'
import { silentLogger, type Logger } from '../shared/listen/logger.js'
import { acceptNative } from '../shared/listen/native-accept.js'
import { PeerIds } from '../shared/listen/peer-ids.js'
import { acceptStock, type StockContext } from '../shared/listen/stock-accept.js'
import type { Replica } from './replica.js'

/** See {@link ListenForPeersOptions.maxDocuments}. */
const DEFAULT_MAX_PEER_DOCUMENTS = 256

/** Options of {@link listenForPeers}. */
export interface ListenForPeersOptions {
  /** Interface to listen on. Default `127.0.0.1`. */
  host?: string
  /** Port; 0 (the default) picks a free one. */
  port?: number
  /**
   * Token keys, as for a relay's `--auth-secret`: `SECRET` or `KID=SECRET` (at least 16
   * characters). Peers then need a JWT (HS256) whose `read` / `write` claims cover the
   * documents they open. Without keys, pass `open: true`.
   */
  auth?: string[]
  /**
   * Serve any peer that reaches the port, with no token: every document of this replica is
   * theirs to read and write, and what they write goes on to this replica's relays under its
   * own token. Needed (and warned about) when there are no `auth` keys.
   */
  open?: boolean
  /**
   * Documents peers may have open on this replica at once that its app has not opened itself
   * (1013 beyond). Each is synced with this replica's relays too, over its one connection
   * there, which a relay caps at 1000 documents: keep this and the app's own below that.
   * Default 256.
   */
  maxDocuments?: number
  /** Limits per connection and per document, as for a relay; see the README. */
  limits?: Partial<Limits>
  /** Browser origins allowed to connect; others get HTTP 403. Default: any. */
  allowedOrigins?: string[]
  /** PEM certificate and key: serve wss:// instead of ws://. */
  tls?: { cert: string | Buffer, key: string | Buffer }
  /** Where connection events are logged (pino fits). Default: nowhere. */
  logger?: Logger
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
 * const server = await listenForPeers(replica, { host: '127.0.0.1', port: 0, auth: [process.env.PEER_SECRET!] })
 * const other = new Replica({ store: new SqliteStore('b.db'), peers: [server.url] })
 * ```
 */
export async function listenForPeers (replica: Replica, options: ListenForPeersOptions = {}): Promise<PeerServer> {
  const limits: Limits = { ...DEFAULT_LIMITS, ...options.limits }
  const keys = parseAuthKeys(options.auth ?? [])
  if (keys.size === 0 && options.open !== true) throw new TypeError('listenForPeers needs auth keys (auth: [secret]), or open: true to let any peer that reaches the port read and write every document')
  if (keys.size > 0 && options.open === true) throw new TypeError('listenForPeers: auth and open: true exclude each other')
  const authenticator = keys.size === 0 ? null : new Authenticator(keys)
  const logger = options.logger ?? silentLogger
  if (authenticator === null) logger.warn({}, 'listening for peers with no auth keys: any peer that can reach this port may read and write every document of this replica, and its writes reach this replica\'s relays under its own token')
  replica.servePeers({ limits, maxDocuments: options.maxDocuments ?? DEFAULT_MAX_PEER_DOCUMENTS })
  const peerIds = new PeerIds()
  const stock: StockContext = {
    // Stock clients' documents, held for them as for native peers (see `serveToPeer`).
    documents: { acquire: docId => replica.acquireForPeer(docId), release: docId => replica.releaseForPeer(docId) },
    authenticator,
    logger
  }
  const listener = await listen({
    host: options.host ?? '127.0.0.1',
    port: options.port ?? 0,
    ...(options.tls === undefined ? {} : { tls: options.tls }),
    ...(options.allowedOrigins === undefined ? {} : { allowedOrigins: options.allowedOrigins }),
    limits,
    authenticator,
    logger,
    pingIntervalMs: 30_000,
    onNative: link => {
      acceptNative(link, {
        self: replica.self,
        authenticator,
        logger,
        maxDocs: limits.maxDocsPerConnection,
        // A replica wants to know what its peers hold (see a handle's `peers`).
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
