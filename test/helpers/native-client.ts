/** A raw native-protocol client over a real WebSocket, for tests that act as a peer would, honest or not. */
import { EventEmitter } from 'node:events'
import { randomUUID } from 'node:crypto'
import WebSocket from 'ws'
import { connectWebSocket, type WebSocketConstructor } from '../../shared/transport/websocket.js'
import { NATIVE_PROTOCOL_VERSION, decodeNativeMessage, encodeNativeMessage, type NativeMessage } from '../../shared/wire/native-messages.js'
import { until } from './events.js'

export interface NativeClient {
  /** Every message received, decoded. */
  received: NativeMessage[]
  /** Resolves once `check(received)` holds. */
  until(what: string, check: (received: NativeMessage[]) => boolean): Promise<void>
  /** Resolves with how the link closed. */
  closed: Promise<{ code: number, reason: string }>
  send(message: NativeMessage): void
  /** Sends raw bytes as one frame. */
  sendFrame(frame: Uint8Array): void
  close(): void
}

/**
 * Dials `url` and says HELLO as `peerId` (random by default, not claiming to be a relay) with `token`,
 * then sends `messages`. What comes back is recorded; nothing is answered.
 */
export async function nativeClient (url: string, { token = '', peerId = randomUUID(), isRelay = false, messages = [] }: { token?: string, peerId?: string, isRelay?: boolean, messages?: NativeMessage[] } = {}): Promise<NativeClient> {
  const link = await connectWebSocket(url, WebSocket as unknown as WebSocketConstructor)
  const received: NativeMessage[] = []
  const events = new EventEmitter()
  link.onMessage = frame => {
    received.push(decodeNativeMessage(frame))
    events.emit('message')
  }
  const closed = new Promise<{ code: number, reason: string }>(resolve => { link.onClose = (code, reason) => resolve({ code, reason }) })
  link.send(encodeNativeMessage({ type: 'hello', version: NATIVE_PROTOCOL_VERSION, peer: { peerId, isRelay }, token }))
  for (const message of messages) link.send(encodeNativeMessage(message))
  return {
    received,
    until: (what, check) => until(what, cb => { events.on('message', cb); return () => events.off('message', cb) }, () => check(received)),
    closed,
    send: message => link.send(encodeNativeMessage(message)),
    sendFrame: frame => link.send(frame),
    close: () => link.close(1000, 'done')
  }
}
