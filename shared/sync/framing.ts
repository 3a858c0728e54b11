/**
 * How a session's messages become frames. The session logic is the same for every peer;
 * only the framing differs: the native protocol names the document in every message (many
 * documents share a link) and carries sequence numbers and acknowledgements, while the
 * y-websocket protocol serves one document per connection, answers a state vector with
 * an update (no state vector back) and has no acknowledgements.
 */
import type { DocId } from '../wire/doc-id.js'
import { encodeNativeMessage } from '../wire/native-messages.js'
import { encodeAwarenessMessage, encodeSyncStep1, encodeSyncStep2, encodeSyncUpdate, type YMessage } from '../wire/y-messages.js'

/** What a session receives from its peer. */
export type SessionInput =
  | { type: 'open', stateVector: Uint8Array }
  /** The answer to an `open`. `stateVector` is null where the framing has none (y-websocket). */
  | { type: 'sync', stateVector: Uint8Array | null, update: Uint8Array }
  | { type: 'update', seq: number, update: Uint8Array }
  | { type: 'ack', seq: number }
  | { type: 'awareness', update: Uint8Array }
  | { type: 'query-awareness' }

/** What a session sends its peer. */
export type SessionOutput =
  | { type: 'open', stateVector: Uint8Array }
  | { type: 'sync', stateVector: Uint8Array, update: Uint8Array }
  | { type: 'update', seq: number, update: Uint8Array }
  | { type: 'ack', seq: number }
  | { type: 'awareness', update: Uint8Array }
  | { type: 'close' }

/** Encodes a session's messages; null: the framing has no such message (nothing is sent). */
export interface Framing {
  /** Whether the peer acknowledges numbered updates. */
  readonly acknowledges: boolean
  encode(docId: DocId, message: SessionOutput): Uint8Array | null
}

/** The native protocol's framing (`petaldb.v3`). */
export const nativeFraming: Framing = {
  acknowledges: true,
  encode: (docId, message) => encodeNativeMessage({ ...message, docId })
}

/** The y-websocket protocol's framing, for stock clients. */
export const ywsFraming: Framing = {
  acknowledges: false,
  encode (_docId, message) {
    switch (message.type) {
      case 'open': return encodeSyncStep1(message.stateVector)
      case 'sync': return encodeSyncStep2(message.update)
      case 'update': return encodeSyncUpdate(message.update)
      case 'awareness': return encodeAwarenessMessage(message.update)
      case 'ack':
      case 'close':
        return null
    }
  }
}

/** A decoded y-websocket message as session input (`auth-denied`, which only relays send, as null). */
export function ywsInput (message: YMessage): SessionInput | null {
  switch (message.type) {
    case 'sync-step1': return { type: 'open', stateVector: message.stateVector }
    case 'sync-step2': return { type: 'sync', stateVector: null, update: message.update }
    case 'sync-update': return { type: 'update', seq: 0, update: message.update }
    case 'awareness': return { type: 'awareness', update: message.update }
    case 'query-awareness': return { type: 'query-awareness' }
    case 'auth-denied': return null
  }
}
