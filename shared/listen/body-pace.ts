/**
 * The pace an HTTP request body must keep. Its headers have the listener's request timeout;
 * after them, Node would wait up to its own `requestTimeout` (five minutes) for the body, so
 * a client could hold sockets, and whatever of their bodies was read, by stalling them.
 */
import type { IncomingMessage } from 'node:http'

/**
 * Watches the body of `req` until it ends: each `windowMs` from the end of its headers must
 * bring at least `bytesPerSecond` × `windowMs` / 1000 bytes, or the socket is destroyed
 * (after `tooSlow` is called). A request without a body is not watched.
 */
export function paceBody (req: IncomingMessage, bytesPerSecond: number, windowMs: number, tooSlow: () => void): void {
  if (!hasBody(req)) return
  const socket = req.socket
  const least = bytesPerSecond * windowMs / 1000
  let mark = socket.bytesRead
  const check = setInterval(() => {
    const read = socket.bytesRead
    // Bytes wait unread in the request: the relay is behind (and TCP holds the client back), not the client.
    if (read - mark < least && req.readableLength === 0) {
      stop()
      tooSlow()
      socket.destroy()
      return
    }
    mark = read
  }, windowMs)
  check.unref()
  const stop = (): void => clearInterval(check)
  // 'close' also comes when the socket closes before the body ended.
  req.once('end', stop)
  req.once('close', stop)
}

/** Whether `req` declares a body: a length above 0, or chunks. */
function hasBody (req: IncomingMessage): boolean {
  return req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0
}
