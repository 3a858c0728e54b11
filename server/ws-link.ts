/** Adapts a server-side `ws` socket to a {@link Link}. */
import type { WebSocket } from 'ws'
import { CloseCode } from '../shared/close-codes.js'
import type { Link } from '../shared/link.js'
import { closeWith, toFrame } from './connections.js'

/** A Link over `socket`. A text frame closes the socket with 1003. */
export function wsLink (socket: WebSocket): Link {
  let closing = false
  const link: Link = {
    send (message) {
      if (socket.readyState === socket.OPEN) socket.send(message)
    },
    close (code, reason) {
      closing = true
      closeWith(socket, code, reason)
    },
    onMessage: () => {},
    onClose: () => {}
  }
  socket.on('message', (data, isBinary) => {
    // Nothing is handled once the socket is closing, from either side.
    if (closing) return
    if (isBinary) return link.onMessage(toFrame(data))
    link.close(CloseCode.unsupportedData, 'text frames are not part of the protocol')
  })
  socket.on('close', (code, reason) => link.onClose(code, reason.toString()))
  return link
}
