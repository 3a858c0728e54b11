/**
 * A WebSocket for the replica that follows the browser's `online` and `offline` events.
 *
 * Browsers do not always drop a WebSocket when the network goes away: Chromium keeps one
 * open under its offline emulation and silently holds what is sent on it, and a real
 * network change can take a long time to surface as a close. The replica would then
 * believe a relay is in sync with it. So on `offline` every socket made here is closed at
 * once (its `close` event fires now, not after a close handshake that cannot complete),
 * and a socket asked for while offline waits for `online` before it dials, so the
 * replica reconnects the moment the browser is back instead of after its backoff.
 */
import type { WebSocketConstructor } from '../../../client/index.js'

type Listener<E extends Event> = ((event: E) => void) | null

/**
 * A WebSocket constructor (for the replica's `WebSocket` option) bound to `target`'s
 * `online` / `offline` events and `navigator.onLine`. It offers the part of the WHATWG
 * API a replica uses: `binaryType`, `readyState`, `protocol`, `send`, `close` and the
 * `on…` handlers.
 */
export function networkAwareWebSocket (target: Window = window): WebSocketConstructor {
  const live = new Set<NetworkAwareSocket>()
  const waiting = new Set<NetworkAwareSocket>()
  target.addEventListener('offline', () => {
    for (const socket of [...live]) socket.drop('the browser went offline')
  })
  target.addEventListener('online', () => {
    for (const socket of [...waiting]) socket.dial()
  })

  class NetworkAwareSocket {
    onopen: Listener<Event> = null
    onmessage: Listener<MessageEvent> = null
    onerror: Listener<Event> = null
    onclose: Listener<CloseEvent> = null
    private socket: WebSocket | null = null
    private state: number = WebSocket.CONNECTING
    private binary: BinaryType = 'blob'

    constructor (private readonly url: string, private readonly protocols?: string | string[]) {
      if (target.navigator.onLine) this.dial()
      else waiting.add(this)
    }

    get readyState (): number {
      return this.state
    }

    get binaryType (): BinaryType {
      return this.binary
    }

    set binaryType (type: BinaryType) {
      this.binary = type
      if (this.socket !== null) this.socket.binaryType = type
    }

    get protocol (): string {
      return this.socket?.protocol ?? ''
    }

    send (data: string | ArrayBufferLike | Blob | ArrayBufferView): void {
      this.socket?.send(data)
    }

    close (code?: number, reason?: string): void {
      if (this.socket === null) this.finish(1000, reason ?? '')
      else if (this.state !== WebSocket.CLOSED) this.socket.close(code, reason)
    }

    /** Opens the real socket (now, or once the browser is online). */
    dial (): void {
      waiting.delete(this)
      if (this.state === WebSocket.CLOSED) return
      const socket = new WebSocket(this.url, this.protocols)
      socket.binaryType = this.binary
      socket.onopen = event => {
        this.state = WebSocket.OPEN
        this.onopen?.(event)
      }
      socket.onmessage = event => this.onmessage?.(event)
      socket.onerror = event => this.onerror?.(event)
      socket.onclose = event => this.finish(event.code, event.reason)
      this.socket = socket
      live.add(this)
    }

    /** Closes at once, whatever the real socket does: the network is gone. */
    drop (reason: string): void {
      const socket = this.socket
      this.finish(1006, reason)
      if (socket !== null) {
        socket.onopen = socket.onmessage = socket.onerror = socket.onclose = null
        socket.close(1000, reason)
      }
    }

    private finish (code: number, reason: string): void {
      if (this.state === WebSocket.CLOSED) return
      this.state = WebSocket.CLOSED
      live.delete(this)
      waiting.delete(this)
      this.onclose?.(new CloseEvent('close', { code, reason, wasClean: false }))
    }
  }

  // The replica only needs the subset above; the full WebSocket type has more.
  return NetworkAwareSocket as unknown as WebSocketConstructor
}
