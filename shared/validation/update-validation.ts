/**
 * Validation of Yjs payloads before they touch a document. Yjs can apply part of a
 * malformed update before it throws, so every update is decoded completely first; only
 * an update that decodes cleanly, and whose shape Yjs integrates the same way everywhere,
 * is applied, stored or forwarded (see update-shape.ts).
 */
import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import { decodeExactly, readString, readVarUint } from '../wire/bytes.js'
import { ProtocolError } from '../errors.js'
import { nestsTooDeep, tooDeep } from './nesting.js'
import { inspectUpdate } from './update-shape.js'

/**
 * Throws {@link ProtocolError} unless `update` is a well-formed Yjs (v1) update of a shape
 * Yjs integrates the same way everywhere; see `inspectUpdate`. Decoding is streaming and
 * linear in the update's size: a struct count claimed by a short update runs out of bytes
 * and fails instead of allocating.
 */
export function validateUpdate (update: Uint8Array): void {
  inspectUpdate(update)
}

/** Decodes a state vector, throwing {@link ProtocolError} if it is malformed. */
export function decodeStateVector (stateVector: Uint8Array): Map<number, number> {
  return decodeExactly(stateVector, decoder => {
    const count = readVarUint(decoder)
    if (count > stateVector.length) throw new ProtocolError('state vector claims more entries than it has bytes')
    const result = new Map<number, number>()
    for (let i = 0; i < count; i++) {
      const client = readVarUint(decoder)
      result.set(client, readVarUint(decoder))
    }
    return result
  })
}

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
