/**
 * PetalDB's isomorphic entry point.
 */
export { MemoryStore } from '../shared/memory-store.js'
export type { DocStore, StoredDoc } from '../shared/store.js'
export { parseDocId, InvalidDocIdError, type DocId } from '../shared/doc-id.js'
export { CloseCode } from '../shared/close-codes.js'
