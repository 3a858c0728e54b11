/**
 * Admission of presence (y-protocols awareness) from a peer, the same on a relay and on a
 * listening replica, on a link to a peer and to a relay: a link may set or remove only the
 * states it brought (or new ones), whoever is on the other end (a peer that says it is a
 * relay, or a relay forwarding what it was told, is no owner of others' states); a state
 * carries the link's authenticated user as `sub`, and a document holds a bounded number of
 * bounded states. A state whose owner left goes with it, and may then be set anew.
 */
import { LimitError } from '../errors.js'
import { CloseCode } from '../wire/close-codes.js'
import { decodeAwarenessUpdate, type AwarenessEntry } from '../wire/awareness.js'

/** Presence limits per document. */
export interface AwarenessLimits {
  /** Awareness entries per document (1008). */
  maxAwarenessEntries: number
  /** Bytes of one awareness state, as JSON (1008). */
  maxAwarenessStateBytes: number
}

/**
 * What admission needs to know of the link that brings presence (a sync session, which
 * validation does not import: it only compares owners and reads these).
 */
export interface PresenceOwner {
  /** The document the presence is for, named in errors. */
  readonly docId: string
  /** The link's authenticated user, stamped as `sub` on the states it sets; undefined if none. */
  readonly user: string | undefined
}

/** What admission needs to know about a document's presence. */
export interface PresenceView {
  /** States held now. */
  readonly size: number
  /** Who brought `clientId`'s state: a link's owner token, `local` for this node's own, undefined if there is none. */
  ownerOf(clientId: number): PresenceOwner | 'local' | undefined
}

/**
 * Decodes an awareness update from `from` and returns the entries it may apply, with its
 * user stamped on them. Throws a ProtocolError if the update is malformed, a LimitError if
 * the document would exceed `limits`.
 */
export function admitAwareness (update: Uint8Array, view: PresenceView, from: PresenceOwner, limits?: AwarenessLimits): AwarenessEntry[] {
  const allowed = decodeAwarenessUpdate(update).filter(entry => {
    const owner = view.ownerOf(entry.clientId)
    if (owner === undefined) return entry.state !== null // removing an entry nobody has is a no-op
    return owner === from
  })
  let count = view.size
  for (const entry of allowed) {
    if (entry.state === null) continue
    if (from.user !== undefined && typeof entry.state === 'object' && !Array.isArray(entry.state)) entry.state = { ...entry.state, sub: from.user }
    if (limits === undefined) continue
    if (JSON.stringify(entry.state).length > limits.maxAwarenessStateBytes) {
      throw new LimitError(CloseCode.policyViolation, `awareness state larger than ${limits.maxAwarenessStateBytes} bytes`)
    }
    if (view.ownerOf(entry.clientId) === undefined && ++count > limits.maxAwarenessEntries) {
      throw new LimitError(CloseCode.policyViolation, `document ${from.docId} would have more than ${limits.maxAwarenessEntries} awareness entries`)
    }
  }
  return allowed
}
