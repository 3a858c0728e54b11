/**
 * Validation of Yjs payloads before they touch a document. Yjs can apply part of a
 * malformed update before it throws, so every update is decoded completely first; only
 * an update that decodes cleanly, and whose shape Yjs integrates the same way everywhere,
 * is applied, stored or forwarded (see update-shape.ts). The state-vector and awareness
 * codecs are in wire/.
 */
import { inspectUpdate } from './update-shape.js'

/**
 * Throws a ProtocolError unless `update` is a well-formed Yjs (v1) update of a shape
 * Yjs integrates the same way everywhere; see `inspectUpdate`. Decoding is streaming and
 * linear in the update's size: a struct count claimed by a short update runs out of bytes
 * and fails instead of allocating.
 */
export function validateUpdate (update: Uint8Array): void {
  inspectUpdate(update)
}
