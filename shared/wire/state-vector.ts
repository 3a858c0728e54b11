/**
 * The codec of Yjs state vectors (`Y.encodeStateVector`): per client, the clock up to which
 * a document holds its structs.
 */
import { decodeExactly, readVarUint } from './bytes.js'
import { ProtocolError } from '../errors.js'

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
