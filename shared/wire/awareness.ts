/**
 * The codec of y-protocols awareness updates (presence): a list of client states, each at
 * a clock, as JSON. Decoding refuses what could not be re-encoded safely (see nesting.ts);
 * what a peer may set is decided elsewhere (validation/awareness.ts).
 */
import type * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import { decodeExactly, readString, readVarUint } from './bytes.js'
import { nestsTooDeep, tooDeep } from './nesting.js'
import { ProtocolError } from '../errors.js'

/** One entry of an awareness update: a client's state (`null` = removed) at a clock. */
export interface AwarenessEntry {
  clientId: number
  clock: number
  state: unknown
}

/** Decodes a y-protocols awareness update, throwing {@link ProtocolError} if it is malformed. */
export function decodeAwarenessUpdate (update: Uint8Array): AwarenessEntry[] {
  return decodeExactly(update, decoder => readAwarenessEntries(decoder, update.length))
}

function readAwarenessEntries (decoder: decoding.Decoder, length: number): AwarenessEntry[] {
  const count = readVarUint(decoder)
  if (count > length) throw new ProtocolError('awareness update claims more entries than it has bytes')
  const entries: AwarenessEntry[] = []
  for (let i = 0; i < count; i++) {
    const clientId = readVarUint(decoder)
    const clock = readVarUint(decoder)
    const json = readString(decoder)
    let state: unknown
    try {
      state = JSON.parse(json)
    } catch {
      throw new ProtocolError('awareness state is not valid JSON')
    }
    if (nestsTooDeep(json)) throw new ProtocolError(tooDeep('an awareness state'))
    entries.push({ clientId, clock, state })
  }
  return entries
}

/** Encodes awareness entries as a y-protocols awareness update. */
export function encodeAwarenessEntries (entries: AwarenessEntry[]): Uint8Array {
  return encoding.encode(encoder => {
    encoding.writeVarUint(encoder, entries.length)
    for (const { clientId, clock, state } of entries) {
      encoding.writeVarUint(encoder, clientId)
      encoding.writeVarUint(encoder, clock)
      encoding.writeVarString(encoder, JSON.stringify(state))
    }
  })
}
