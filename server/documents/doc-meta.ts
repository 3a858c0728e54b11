/**
 * What a relay keeps in a document's metadata (the small opaque value a store keeps beside
 * the log, see `DocStore.updateMeta`): when it last changed, for listings, and whether it
 * was deleted. A deleted document keeps only this tombstone, so that no relay, replica or
 * stock client can bring it back by uploading an old copy.
 */

/** A relay document's metadata. */
export interface RelayDocMeta {
  /** Milliseconds since the epoch of the last stored change (to within {@link STAMP_EVERY_MS}). */
  updatedAt: number
  /** When the document was deleted, if it was. */
  deletedAt?: number
  /**
   * A deleted document's content may still be in the store's files: set in the same commit
   * as the tombstone, cleared once the store has erased (see `erasure.ts`).
   */
  erasePending?: boolean
}

/** How often at most a document's `updatedAt` is rewritten while updates stream in. */
export const STAMP_EVERY_MS = 1000

/** `meta` as stored. */
export function encodeDocMeta (meta: RelayDocMeta): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(meta))
}

/** Stored metadata, or null if there is none or it is not a relay's (a replica's counters). */
export function decodeDocMeta (bytes: Uint8Array | null): RelayDocMeta | null {
  if (bytes === null) return null
  try {
    const meta = JSON.parse(new TextDecoder().decode(bytes)) as Partial<RelayDocMeta>
    return typeof meta.updatedAt === 'number' ? meta as RelayDocMeta : null
  } catch {
    return null
  }
}
