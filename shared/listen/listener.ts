/**
 * Accepting WebSocket connections on Node, the same for a relay and for a replica that
 * listens for peers: an HTTP(S) server whose upgrades are checked (browser origin, and for
 * stock y-websocket clients the document id and token) and limited (connections per
 * address, frame size, rates, slow readers, slow request bodies), kept alive with pings,
 * and handed over as Links: native (`petaldb.v3`) ones to `onNative`, stock ones with their
 * admission to `onStock`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo, Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { WebSocket, WebSocketServer as WebSocketServerType } from 'ws'
import { requirePeer } from '../node-peers.js'
import { CloseCode } from '../wire/close-codes.js'
import type { DocId } from '../wire/doc-id.js'
import { NATIVE_SUBPROTOCOL } from '../wire/native-messages.js'
import type { Link } from '../transport/link.js'
import { admitStockClient, originAllowed } from './admission.js'
import type { TokenVerifier, Grant } from './auth.js'
import { paceBody } from './body-pace.js'
import { closeWith } from './closing.js'
import type { Limits } from './limits.js'
import type { Logger } from './logger.js'
import { pingAll, wsLink, type WsLink, type WsLinkContext } from './ws-link.js'

/** A stock client admitted to a document, with what its token grants. */
export interface StockClient {
  docId: DocId
  grant: Grant
  /** The query string of its URL (with its token), to pass on when proxying. */
  query: string
}

/** Options of {@link listen}. */
export interface ListenerOptions {
  host: string
  /** 0 picks a free port. */
  port: number
  /** PEM certificate and key: serve wss:// instead of ws://. */
  tls?: { cert: string | Buffer, key: string | Buffer }
  /** Browser origins allowed to connect; others get HTTP 403. Default: any. */
  allowedOrigins?: string[]
  limits: Limits
  /** Verifies stock clients' tokens (URL parameter `token`); null: every client may read and write. */
  authenticator: TokenVerifier | null
  logger: Logger
  /** Milliseconds between keep-alive pings; a connection that misses one is dropped. */
  pingIntervalMs: number
  /** Milliseconds a connection may take to send its HTTP request's headers; also the window over which a body's pace is counted. Default 10 000. */
  requestTimeoutMs?: number
  /** A native connection: its first message will be HELLO. */
  onNative: (link: Link) => void
  /** A stock y-websocket client, admitted. */
  onStock: (link: Link, client: StockClient) => void
  /** A plain HTTP request. Default: 426 with a hint. */
  onHttp?: (req: IncomingMessage, res: ServerResponse) => void
  /** Every WebSocket connection's close code, whoever closed it (for metrics). */
  onClosed?: (code: number) => void
}

/** A listening server. */
export interface Listener {
  /** Base URL, e.g. `ws://127.0.0.1:4321`. */
  readonly url: string
  readonly port: number
  /** Open WebSocket connections. */
  readonly connections: number
  /** Stops accepting, closes every connection (cut off after `graceMs`), and resolves once the server is closed. */
  close(graceMs?: number): Promise<void>
}

/** Starts listening; resolves once the server is bound. */
export async function listen (options: ListenerOptions): Promise<Listener> {
  const { limits, logger } = options
  const { WebSocketServer } = requirePeer<{ WebSocketServer: typeof WebSocketServerType }>('ws', 'Accepting connections')
  const wss = new WebSocketServer({
    noServer: true,
    // The links below are the clients: ws's own set would add a close listener (a closure and a listener array) per socket.
    clientTracking: false,
    maxPayload: limits.maxFrameBytes,
    // Native peers ask for the PetalDB subprotocol; stock y-websocket clients ask for none.
    handleProtocols: protocols => protocols.has(NATIVE_SUBPROTOCOL) ? NATIVE_SUBPROTOCOL : false
  })
  const onHttp = options.onHttp ?? answerUpgradeRequired
  const http = options.tls === undefined ? createServer(onHttp) : createHttpsServer(options.tls, onHttp)
  guardSockets(http, limits, options.requestTimeoutMs ?? 10_000, logger)
  const perIp = new AddressCounts()
  /** Every open link, for keep-alive and shutdown. */
  const open = new Set<WsLink>()
  const links: WsLinkContext = {
    limits,
    logger,
    closed: (link, code) => {
      open.delete(link)
      options.onClosed?.(code)
      perIp.remove(link.ip)
    }
  }

  const onConnection = (ws: WebSocket, req: IncomingMessage, stock: Awaited<ReturnType<typeof admitStockClient>> | null): void => {
    const ip = req.socket.remoteAddress ?? ''
    const link = wsLink(ws, ip, links)
    open.add(link)
    const count = perIp.add(ip)
    if (count > limits.maxConnectionsPerIp) {
      return closeWith(link, CloseCode.tryAgainLater, `more than ${limits.maxConnectionsPerIp} connections from one address`)
    }
    if (stock === null) return options.onNative(link)
    if (!stock.ok) {
      logger.info({ url: req.url?.split('?', 1)[0], reason: stock.reason }, 'rejected connection')
      return closeWith(link, stock.code, stock.reason)
    }
    options.onStock(link, stock)
  }

  http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', destroySocket)
    if (!originAllowed(req, options.allowedOrigins)) {
      logger.info({ origin: req.headers.origin }, 'rejected connection: origin not allowed')
      socket.end('HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\n')
      return
    }
    const native = req.headers['sec-websocket-protocol']?.split(',').some(p => p.trim() === NATIVE_SUBPROTOCOL) === true
    const admission = native ? Promise.resolve(null) : admitStockClient(req.url ?? '/', options.authenticator)
    admission.then(verdict => wss.handleUpgrade(req, socket, head, ws => {
      socket.off('error', destroySocket) // ws handles socket errors from here on
      onConnection(ws, req, verdict)
    })).catch((error: unknown) => {
      logger.error({ err: error }, 'upgrade failed')
      socket.destroy()
    })
  })

  const pinger = setInterval(() => pingAll(open), options.pingIntervalMs)
  pinger.unref()

  await new Promise<void>((resolve, reject) => {
    const failed = (error: Error): void => {
      clearInterval(pinger)
      wss.close()
      reject(error)
    }
    http.once('error', failed)
    http.listen(options.port, options.host, () => {
      http.off('error', failed)
      resolve()
    })
  })
  const address = http.address() as AddressInfo
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
  let closing: Promise<void> | null = null
  return {
    url: `${options.tls === undefined ? 'ws' : 'wss'}://${host}:${address.port}`,
    port: address.port,
    get connections () {
      return open.size
    },
    close (graceMs = 2000) {
      closing ??= (async () => {
        clearInterval(pinger)
        const stopped = new Promise<void>(resolve => http.close(() => resolve()))
        http.closeIdleConnections()
        await closeClients(open, graceMs)
        await stopped
      })()
      return closing
    }
  }
}

/**
 * Counts every TCP connection by address from its first byte, before any upgrade, so that
 * half-sent requests count too: an address with twice its WebSocket allowance of sockets
 * open has further ones dropped at once (within the allowance, WebSockets over it are
 * closed with 1013, which tells honest clients to retry). A socket that has not sent its
 * request's headers within `requestTimeoutMs` is dropped, and so is one whose body then
 * brings less than `minBodyBytesPerSecond` in a `requestTimeoutMs`: seconds, not the
 * minutes of Node's defaults.
 */
function guardSockets (http: Server, limits: Limits, requestTimeoutMs: number, logger: Logger): void {
  const perIp = new AddressCounts()
  // By remote address and port (`ip:port`), which a TLS socket shares with the TCP socket under it.
  const deadlines = new Map<string, ReturnType<typeof setTimeout>>()
  const key = (socket: { remoteAddress?: string | undefined, remotePort?: number | undefined }): string => `${socket.remoteAddress ?? ''}:${socket.remotePort}`
  // One close listener for every socket. Its address is still known once closed: Node keeps what it read on connection.
  function closed (this: Socket): void {
    const socketKey = key(this)
    clearTimeout(deadlines.get(socketKey))
    deadlines.delete(socketKey)
    perIp.remove(socketKey.slice(0, socketKey.lastIndexOf(':')))
  }
  // The entry goes as soon as the request is in: a cleared timer kept for the socket's life costs memory per connection.
  const requestArrived = (req: IncomingMessage): void => {
    const socketKey = key(req.socket)
    clearTimeout(deadlines.get(socketKey))
    deadlines.delete(socketKey)
  }
  const tooSlow = (req: IncomingMessage): void => logger.info({ ip: req.socket.remoteAddress }, 'dropping a connection: its request body is too slow')
  http.on('request', (req: IncomingMessage) => {
    requestArrived(req)
    paceBody(req, limits.minBodyBytesPerSecond, requestTimeoutMs, () => tooSlow(req))
  })
  http.on('upgrade', requestArrived)
  http.on('connection', (socket: Socket) => {
    const ip = socket.remoteAddress ?? ''
    if (perIp.count(ip) >= 2 * limits.maxConnectionsPerIp) {
      logger.info({ ip }, 'dropping a connection: too many sockets from one address')
      socket.destroy()
      return
    }
    perIp.add(ip)
    const socketKey = key(socket)
    deadlines.set(socketKey, destroyAfter(socket, requestTimeoutMs))
    // 'close' comes once: `on` spares the wrapper `once` keeps per socket.
    socket.on('close', closed)
  })
}

/** Open sockets per remote address. */
class AddressCounts {
  private readonly counts = new Map<string, number>()

  count (ip: string): number {
    return this.counts.get(ip) ?? 0
  }

  /** Counts one more socket from `ip`; returns how many are open now. */
  add (ip: string): number {
    const count = this.count(ip) + 1
    this.counts.set(ip, count)
    return count
  }

  remove (ip: string): void {
    const left = this.count(ip) - 1
    if (left <= 0) this.counts.delete(ip)
    else this.counts.set(ip, left)
  }
}

/** A timer destroying `socket` after `ms` (its own closure: the socket's close listener must not keep the timer alive). */
function destroyAfter (socket: Socket, ms: number): ReturnType<typeof setTimeout> {
  const deadline = setTimeout(() => socket.destroy(), ms)
  deadline.unref()
  return deadline
}

async function closeClients (links: Set<WsLink>, graceMs: number): Promise<void> {
  const closed = [...links].map(({ socket }) => new Promise(resolve => {
    socket.once('close', resolve)
    closeWith(socket, CloseCode.goingAway, 'shutting down')
  }))
  const timer = new Promise(resolve => setTimeout(resolve, graceMs).unref())
  await Promise.race([Promise.all(closed), timer])
  for (const { socket } of links) socket.terminate()
}

/** A socket error before or during the upgrade just drops the socket (a module-level function, so the listener holds no request). */
function destroySocket (this: Duplex): void {
  this.destroy()
}

function answerUpgradeRequired (_req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(426, { 'content-type': 'text/plain' })
  res.end('Connect with a WebSocket to /<docId>\n')
}
