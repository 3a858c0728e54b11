/** Adapts a server-side `ws` socket to a {@link Link}, enforcing the per-connection limits. */
import type { Log } from './log.js'
import type { RawData, WebSocket } from 'ws'
import { CloseCode } from '../wire/close-codes.js'
import type { Link } from '../transport/link.js'
import { closeForError, closeWith, toFrame } from './closing.js'
import { ConnectionRates, type Limits } from './limits.js'

const ignore = (): void => {}

/**
 * The link of each socket, for the listeners below: they are shared by every socket, where
 * closures would cost memory per connection (a relay holds thousands of idle ones).
 */
const links = new WeakMap<WebSocket, WsLink>()

function onSocketMessage (this: WebSocket, data: RawData, isBinary: boolean): void {
  links.get(this)?.receive(data, isBinary)
}

function onSocketClose (this: WebSocket, code: number, reason: Buffer): void {
  links.get(this)?.onClose(code, reason.toString())
}

/**
 * A Link over `socket`. A text frame closes it with 1003. A sender over its rate limits is
 * slowed down: the socket is not read until its budget catches up (TCP then holds the
 * sender back); one far over them is closed with 1008. A reader whose send buffer outgrows
 * `maxBufferedBytes` is cut off.
 */
export function wsLink (socket: WebSocket, limits: Limits, log: Log): Link {
  const link = new WsLink(socket, limits, log)
  links.set(socket, link)
  socket.on('message', onSocketMessage)
  socket.on('close', onSocketClose)
  return link
}

/** See {@link wsLink}. */
class WsLink implements Link {
  onMessage: (message: Uint8Array) => void = ignore
  onClose: (code: number, reason: string) => void = ignore
  private closing = false
  private readonly rates: ConnectionRates

  constructor (private readonly socket: WebSocket, private readonly limits: Limits, private readonly log: Log) {
    this.rates = new ConnectionRates(limits)
  }

  send (message: Uint8Array): void {
    const { socket } = this
    if (socket.readyState !== socket.OPEN) return
    // Counted before queuing: a reader that reads nothing gets at most one message past the bound.
    if (socket.bufferedAmount > 0 && socket.bufferedAmount + message.length > this.limits.maxBufferedBytes) {
      // The close frame would queue behind what the reader is not reading: just cut it off.
      this.log.info({ buffered: socket.bufferedAmount }, 'dropping a slow reader')
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
      this.slowDown(this.rates.charge(bytes))
    } catch (error) {
      closeForError(this, error, this.log, {})
    }
  }

  /** A frame from the socket. */
  receive (data: RawData, isBinary: boolean): void {
    // Nothing is handled once the socket is closing, from either side.
    if (this.closing) return
    if (!isBinary) return this.close(CloseCode.unsupportedData, 'text frames are not part of the protocol')
    const frame = toFrame(data)
    try {
      this.slowDown(this.rates.frame(frame))
    } catch (error) {
      return closeForError(this, error, this.log, {})
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
