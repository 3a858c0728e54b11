/** A {@link Link} over a WHATWG WebSocket (browsers, and `ws` on Node), speaking the native protocol. */
import { CloseCode } from '../wire/close-codes.js'
import type { Link } from './link.js'
import { UsageError } from '../errors.js'
import { NATIVE_SUBPROTOCOL } from '../wire/native-messages.js'

/** A WebSocket constructor with the WHATWG API: `globalThis.WebSocket` or the `ws` package's. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocket

let defaultWebSocket: WebSocketConstructor | undefined

/** Sets the WebSocket implementation used when none is given (`petaldb/node` sets `ws`). */
export function setDefaultWebSocket (implementation: WebSocketConstructor): void {
  defaultWebSocket = implementation
}

/** The WebSocket implementation to use: `implementation`, the global one, or the default set; throws if there is none. */
export function resolveWebSocket (implementation?: WebSocketConstructor): WebSocketConstructor {
  const resolved = implementation ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket ?? defaultWebSocket
  if (resolved === undefined) throw new UsageError('no WebSocket implementation: pass one (e.g. from "ws") or import "petaldb/node"')
  return resolved
}

/**
 * Opens a WebSocket to `url` speaking the native protocol; rejects if it fails to open
 * within `timeoutMs` or the server does not accept the subprotocol.
 */
export function connectWebSocket (url: string, implementation?: WebSocketConstructor, timeoutMs = 10_000): Promise<Link> {
  const subprotocol = NATIVE_SUBPROTOCOL
  const WS = resolveWebSocket(implementation)
  return new Promise((resolve, reject) => {
    const socket = new WS(url, subprotocol)
    socket.binaryType = 'arraybuffer'
    let opened = false
    let closed = false
    const timer = setTimeout(() => socket.close(), timeoutMs)
    const link: Link = {
      send (message) {
        if (socket.readyState === 1) socket.send(message)
      },
      close (code, reason) {
        socket.close(code, reason)
        // Closed for this side now: a socket whose network is gone may take long to finish
        // the closing handshake (Chromium keeps one open while offline), and nothing that
        // arrives after this is wanted.
        if (closed || !opened) return
        closed = true
        link.onClose(code, reason)
      },
      onMessage: () => {},
      onClose: () => {}
    }
    socket.onopen = () => {
      clearTimeout(timer)
      if (socket.protocol !== subprotocol) {
        socket.close(CloseCode.normal, `expected the ${subprotocol} subprotocol`)
        return
      }
      opened = true
      resolve(link)
    }
    socket.onmessage = event => {
      if (!closed && event.data instanceof ArrayBuffer) link.onMessage(new Uint8Array(event.data))
    }
    socket.onerror = () => {}
    socket.onclose = event => {
      clearTimeout(timer)
      if (closed) return
      closed = true
      if (opened) link.onClose(event.code, event.reason)
      else reject(new Error(`could not connect to ${url} (${event.code}${event.reason === '' ? '' : ': ' + event.reason})`))
    }
  })
}
