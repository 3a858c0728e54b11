/**
 * The tombstones a store holds: deleted documents, each with nothing stored but its
 * metadata (see doc-meta.ts).
 */
import type { DocStore } from '../../shared/storage/store.js'
import type { DocId } from '../../shared/wire/doc-id.js'
import { decodeDocMeta } from './doc-meta.js'

/** A deleted document. */
export interface Tombstone {
  docId: DocId
  /** When it was deleted (milliseconds since the epoch). */
  deletedAt: number
  /** Whether its content may still be in the store's files. */
  erasePending: boolean
}

/** Every tombstone in `store`, by id. */
export async function listTombstones (store: DocStore): Promise<Tombstone[]> {
  const bare = store.metaOnly !== undefined ? await store.metaOnly() : await metaOnlyByListing(store)
  const tombstones: Tombstone[] = []
  for (const { docId, meta } of bare) {
    const decoded = decodeDocMeta(meta)
    if (decoded?.deletedAt !== undefined) tombstones.push({ docId, deletedAt: decoded.deletedAt, erasePending: decoded.erasePending === true })
  }
  return tombstones
}

/** {@link DocStore.metaOnly} for a store without it: every document, one at a time. */
async function metaOnlyByListing (store: DocStore): Promise<Array<{ docId: DocId, meta: Uint8Array }>> {
  const found: Array<{ docId: DocId, meta: Uint8Array }> = []
  for (const docId of await store.list()) {
    const stored = await store.load(docId)
    if (stored !== null && stored.meta !== null && stored.snapshot === null && stored.updates.length === 0) found.push({ docId, meta: stored.meta })
  }
  return found
}
