/**
 * What a WebRTC signal's payload may be, as a relay passes it on: JSON text of an object
 * whose `t` says which step of the handshake it is (`hi`, `offer`, `answer`, `ice`). The
 * rest is the replicas' business; the relay checks only what keeps them, and itself, safe
 * from a hostile sender: the size, the shape, and that only a `hi` goes to every client.
 */
import { ProtocolError } from '../errors.js'
import { nestsTooDeep, tooDeep } from '../wire/nesting.js'

/**
 * Bytes a signal's payload may have. Replicas trickle ICE candidates (a few hundred bytes
 * each), so an offer or answer is one SDP of a few KiB; 32 KiB also holds an SDP that
 * carries many candidates itself, as a non-trickling implementation sends.
 */
export const MAX_SIGNAL_PAYLOAD_BYTES = 32 * 1024

/** The kinds of signal (the `t` field). */
const KINDS: ReadonlySet<string> = new Set(['hi', 'offer', 'answer', 'ice'])

/** A signal's payload, decoded: its kind, and whatever else the replicas put in it. */
export type SignalPayload = { t: 'hi' | 'offer' | 'answer' | 'ice' } & Record<string, unknown>

const utf8 = new TextDecoder('utf-8', { fatal: true })

/**
 * Decodes `payload`; throws a {@link ProtocolError} unless it is a signal a relay passes on:
 * at most {@link MAX_SIGNAL_PAYLOAD_BYTES}, a JSON object whose `t` is a known kind, and a
 * `hi` if it is a `broadcast` (to every client of the document: anything else is meant for
 * one peer). Relays check what they pass on, and replicas what they are passed.
 */
export function readSignalPayload (payload: Uint8Array, broadcast: boolean): SignalPayload {
  if (payload.length > MAX_SIGNAL_PAYLOAD_BYTES) throw new ProtocolError(`a signal's payload is larger than ${MAX_SIGNAL_PAYLOAD_BYTES} bytes`)
  let signal: unknown
  let json: string
  try {
    json = utf8.decode(payload)
    signal = JSON.parse(json)
  } catch {
    throw new ProtocolError('a signal\'s payload is not JSON')
  }
  if (typeof signal !== 'object' || signal === null || Array.isArray(signal)) throw new ProtocolError('a signal\'s payload is not a JSON object')
  const kind = (signal as { t?: unknown }).t
  if (typeof kind !== 'string' || !KINDS.has(kind)) throw new ProtocolError('a signal\'s "t" is not hi, offer, answer or ice')
  if (broadcast && kind !== 'hi') throw new ProtocolError(`a signal to every client must be a hi, not ${kind}`)
  // Replicas parse it, and may re-encode what it carries.
  if (nestsTooDeep(json)) throw new ProtocolError(tooDeep('a signal'))
  return signal as SignalPayload
}
