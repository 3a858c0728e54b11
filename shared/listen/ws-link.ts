/** Adapts a server-side `ws` socket to a {@link Link}, enforcing the per-connection limits. */
import type { Log } from './log.js'
import type { WebSocket } from 'ws'
import { CloseCode } from '../wire/close-codes.js'
import type { Link } from '../transport/link.js'
import { closeForError, closeWith, toFrame } from './closing.js'
import { connectionRateGuard, type Limits } from './limits.js'

const ignore = (): void => {}

/**
 * A Link over `socket`. A text frame closes it with 1003. A sender over its rate limits is
 * slowed down: the socket is not read until its budget catches up (TCP then holds the
 * sender back); one far over them is closed with 1008. A reader whose send buffer outgrows
 * `maxBufferedBytes` is cut off.
 */
export function wsLink (socket: WebSocket, limits: Limits, log: Log): Link {
  let closing = false
  const rates = connectionRateGuard(limits)
  /** Stops reading the socket for `debt` seconds: TCP then holds the sender back. */
  const slowDown = (debt: number): void => {
    if (debt <= 0 || socket.isPaused) return
    socket.pause()
    setTimeout(() => { if (!closing) socket.resume() }, Math.ceil(debt * 1000)).unref()
  }
  const link: Link = {
    send (message) {
      if (socket.readyState !== socket.OPEN) return
      // Counted before queuing: a reader that reads nothing gets at most one message past the bound.
      if (socket.bufferedAmount > 0 && socket.bufferedAmount + message.length > limits.maxBufferedBytes) {
        // The close frame would queue behind what the reader is not reading: just cut it off.
        log.info({ buffered: socket.bufferedAmount }, 'dropping a slow reader')
        closing = true
        socket.terminate()
        return
      }
      socket.send(message)
    },
    close (code, reason) {
      closing = true
      closeWith(socket, code, reason)
      // A paused socket would never read the peer's answer to the close.
      socket.resume()
    },
    charge (bytes) {
      if (closing) return
      try {
        slowDown(rates.bytes(bytes))
      } catch (error) {
        closeForError(link, error, log, {})
      }
    },
    onMessage: ignore,
    onClose: ignore
  }
  socket.on('message', (data, isBinary) => {
    // Nothing is handled once the socket is closing, from either side.
    if (closing) return
    if (!isBinary) return link.close(CloseCode.unsupportedData, 'text frames are not part of the protocol')
    const frame = toFrame(data)
    try {
      slowDown(rates.frame(frame))
    } catch (error) {
      return closeForError(link, error, log, {})
    }
    link.onMessage(frame)
  })
  socket.on('close', (code, reason) => link.onClose(code, reason.toString()))
  return link
}
