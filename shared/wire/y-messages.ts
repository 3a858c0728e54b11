/**
 * Codec for the y-websocket protocol spoken by stock `y-websocket` providers:
 * one message per WebSocket frame, `varuint type` followed by the payload.
 *
 *   sync (0):            varuint subtype, varbytes payload
 *     step1 (0):         payload = state vector
 *     step2 (1):         payload = update
 *     update (2):        payload = update
 *   awareness (1):       varbytes awareness update
 *   auth (2):            varuint subtype (0 = permission denied), varstring reason
 *   query-awareness (3): nothing
 *
 * Decoding is strict: unknown types, truncation and trailing bytes are errors. Payloads are
 * not decoded here: see `state-vector.ts` and `awareness.ts` beside this file, and
 * `validation/update-validation.ts` for updates.
 */
import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import { decodeExactly, readBytes, readString, readVarUint } from './bytes.js'
import { ProtocolError } from '../errors.js'

/** Top-level y-websocket message types. */
export const MessageType = { sync: 0, awareness: 1, auth: 2, queryAwareness: 3 } as const

/** Subtypes of a sync message. */
export const SyncType = { step1: 0, step2: 1, update: 2 } as const

/** A decoded y-websocket message. */
export type YMessage =
  | { type: 'sync-step1', stateVector: Uint8Array }
  | { type: 'sync-step2', update: Uint8Array }
  | { type: 'sync-update', update: Uint8Array }
  | { type: 'awareness', update: Uint8Array }
  | { type: 'auth-denied', reason: string }
  | { type: 'query-awareness' }

/** Decodes one y-websocket message; throws {@link ProtocolError} if it is malformed. */
export function decodeYMessage (bytes: Uint8Array): YMessage {
  return decodeExactly(bytes, readMessage)
}

function readMessage (decoder: decoding.Decoder): YMessage {
  const type = readVarUint(decoder)
  switch (type) {
    case MessageType.sync: {
      const subtype = readVarUint(decoder)
      const payload = readBytes(decoder)
      if (subtype === SyncType.step1) return { type: 'sync-step1', stateVector: payload }
      if (subtype === SyncType.step2) return { type: 'sync-step2', update: payload }
      if (subtype === SyncType.update) return { type: 'sync-update', update: payload }
      throw new ProtocolError(`unknown sync message subtype ${subtype}`)
    }
    case MessageType.awareness:
      return { type: 'awareness', update: readBytes(decoder) }
    case MessageType.auth: {
      const subtype = readVarUint(decoder)
      if (subtype !== 0) throw new ProtocolError(`unknown auth message subtype ${subtype}`)
      return { type: 'auth-denied', reason: readString(decoder) }
    }
    case MessageType.queryAwareness:
      return { type: 'query-awareness' }
    default:
      throw new ProtocolError(`unknown message type ${type}`)
  }
}

function encodeSync (subtype: number, payload: Uint8Array): Uint8Array {
  const encoder = encoding.createEncoder()
  encoding.writeVarUint(encoder, MessageType.sync)
  encoding.writeVarUint(encoder, subtype)
  encoding.writeVarUint8Array(encoder, payload)
  return encoding.toUint8Array(encoder)
}

/** Sync step 1: "here is my state vector, send me what I am missing". */
export const encodeSyncStep1 = (stateVector: Uint8Array): Uint8Array => encodeSync(SyncType.step1, stateVector)

/** Sync step 2: the answer to a step 1, an update with what the asker was missing. */
export const encodeSyncStep2 = (update: Uint8Array): Uint8Array => encodeSync(SyncType.step2, update)

/** A live document update. */
export const encodeSyncUpdate = (update: Uint8Array): Uint8Array => encodeSync(SyncType.update, update)

/** An awareness update (y-protocols encoding). */
export function encodeAwarenessMessage (update: Uint8Array): Uint8Array {
  const encoder = encoding.createEncoder()
  encoding.writeVarUint(encoder, MessageType.awareness)
  encoding.writeVarUint8Array(encoder, update)
  return encoding.toUint8Array(encoder)
}

/** A request for every awareness state the other side knows. */
export function encodeQueryAwareness (): Uint8Array {
  return encoding.encode(encoder => encoding.writeVarUint(encoder, MessageType.queryAwareness))
}
