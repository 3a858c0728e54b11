/**
 * Adapts a server-side `ws` socket to a {@link Link}, enforcing the per-connection limits
 * and keeping the connection's state for the listener (its address, whether it answered
 * the last ping). A relay holds thousands of idle connections: each is one object, and the
 * socket listeners are functions shared by every socket, where closures would cost memory
 * per connection (as would a third 'close' listener: EventEmitter's listener arrays
 * outgrow two by a dozen slots).
 */
import type { Logger } from './logger.js'
import type { RawData, WebSocket } from 'ws'
import { CloseCode } from '../wire/close-codes.js'
import type { Link } from '../transport/link.js'
import { closeForError, closeWith, toFrame } from './closing.js'
import { ConnectionRates, type Limits } from './limits.js'

const ignore = (): void => {}

/** What every link of one listener shares. */
export interface WsLinkContext {
  limits: Limits
  logger: Logger
  /** A link's socket closed, whoever closed it (after the link's own `onClose`). */
  closed(link: WsLink, code: number): void
}

/** The link of each socket, for the shared listeners. */
const links = new WeakMap<WebSocket, WsLink>()

function onSocketMessage (this: WebSocket, data: RawData, isBinary: boolean): void {
  links.get(this)?.receive(data, isBinary)
}

function onSocketClose (this: WebSocket, code: number, reason: Buffer): void {
  const link = links.get(this)
  if (link === undefined) return
  try {
    link.onClose(code, reason.toString())
  } finally {
    // The listener forgets the link even if its handler threw.
    link.context.closed(link, code)
  }
}

function onSocketPong (this: WebSocket): void {
  const link = links.get(this)
  if (link !== undefined) link.alive = true
}

function onSocketError (this: WebSocket, error: Error): void {
  links.get(this)?.context.logger.debug({ err: error }, 'socket error')
}

/**
 * A Link over `socket`, from `ip`. A text frame closes it with 1003. A sender over its rate
 * limits is slowed down: the socket is not read until its budget catches up (TCP then
 * holds the sender back); one far over them is closed with 1008. A reader whose send
 * buffer outgrows `maxBufferedBytes` is cut off.
 */
export function wsLink (socket: WebSocket, ip: string, context: WsLinkContext): WsLink {
  const link = new WsLink(socket, ip, context)
  links.set(socket, link)
  socket.on('message', onSocketMessage)
  socket.on('close', onSocketClose)
  socket.on('pong', onSocketPong)
  socket.on('error', onSocketError)
  return link
}

/**
 * Keep-alive: terminates each socket that did not answer the last ping, pings the others.
 * Call it every ping interval with every open link.
 */
export function pingAll (open: Iterable<WsLink>): void {
  for (const link of open) {
    if (!link.alive) {
      link.socket.terminate()
      continue
    }
    link.alive = false
    link.socket.ping()
  }
}

/** See {@link wsLink}. */
export class WsLink extends ConnectionRates implements Link {
  onMessage: (this: Link, message: Uint8Array) => void = ignore
  onClose: (this: Link, code: number, reason: string) => void = ignore
  /** Whether the socket answered the last ping (see {@link pingAll}). */
  alive = true
  private closing = false

  constructor (readonly socket: WebSocket, readonly ip: string, readonly context: WsLinkContext) {
    super()
  }

  protected get rateLimits (): Limits {
    return this.context.limits
  }

  send (message: Uint8Array): void {
    const { socket } = this
    if (socket.readyState !== socket.OPEN) return
    // Counted before queuing: a reader that reads nothing gets at most one message past the bound.
    if (socket.bufferedAmount > 0 && socket.bufferedAmount + message.length > this.context.limits.maxBufferedBytes) {
      // The close frame would queue behind what the reader is not reading: just cut it off.
      this.context.logger.info({ buffered: socket.bufferedAmount }, 'dropping a slow reader')
      this.closing = true
      socket.terminate()
      return
    }
    socket.send(message)
  }

  close (code: number, reason: string): void {
    this.closing = true
    closeWith(this.socket, code, reason)
    // A paused socket would never read the peer's answer to the close.
    this.socket.resume()
  }

  charge (bytes: number): void {
    if (this.closing) return
    try {
      this.slowDown(this.chargeBytes(bytes))
    } catch (error) {
      closeForError(this, error, this.context.logger, {})
    }
  }

  /** A frame from the socket. */
  receive (data: RawData, isBinary: boolean): void {
    // Nothing is handled once the socket is closing, from either side.
    if (this.closing) return
    if (!isBinary) return this.close(CloseCode.unsupportedData, 'text frames are not part of the protocol')
    const frame = toFrame(data)
    try {
      this.slowDown(this.chargeFrame(frame))
    } catch (error) {
      return closeForError(this, error, this.context.logger, {})
    }
    this.onMessage(frame)
  }

  /** Stops reading the socket for `debt` seconds: TCP then holds the sender back. */
  private slowDown (debt: number): void {
    const { socket } = this
    if (debt <= 0 || socket.isPaused) return
    socket.pause()
    setTimeout(() => { if (!this.closing) socket.resume() }, Math.ceil(debt * 1000)).unref()
  }
}
