/**
 * The document side of the sync engine. A {@link DocumentHost} is one document as a node
 * holds it: a replica's Y.Doc bound to its local store, or a relay's stored updates. It
 * has any number of {@link SyncSession}s at once, one per peer, and forwards every new
 * update and presence change to all of them except the one it came from.
 */
import type { DocId } from '../wire/doc-id.js'
import type { SyncSession } from './session.js'

/** What a session sends the peer after the peer answered its `open`: what the peer lacks. */
export interface HandOver {
  update: Uint8Array
  /** The host's local changes this update includes (see {@link DocumentHost.handOver}). */
  localChanges: number
}

/** One document as a node holds it; see the module comment. */
export interface DocumentHost {
  readonly docId: DocId
  /** The document's state vector (Yjs encoding). */
  stateVector(): Uint8Array
  /** Everything a peer with `stateVector` lacks, as one update. Throws a ProtocolError if the state vector is malformed. */
  missingFor(stateVector: Uint8Array): Uint8Array
  /**
   * Null if everything applied so far may leave this node now, else a promise that resolves
   * once it may: a replica sends nothing that is not in its local store yet. A relay
   * forwards before it commits, so it is always ready.
   */
  readyToShare(): Promise<void> | null
  /**
   * What to send a peer whose state vector is `peerStateVector`, right after it answered
   * this node's `open`, or null if nothing needs sending. Called once {@link readyToShare}
   * resolved, in the same turn as the send.
   */
  handOver(peerStateVector: Uint8Array, session: SyncSession): HandOver | null
  /**
   * Validates and applies an update from the peer of `from`. Throws (a ProtocolError,
   * LimitError or AuthError), having applied nothing, if it is refused; otherwise returns a
   * promise that resolves once the update is durable on this node (stored locally on a
   * replica; committed, and in a cluster replicated, on a relay) and rejects if it never will be.
   */
  applyUpdate(update: Uint8Array, from: SyncSession): Promise<void>
  /**
   * Whether `update` (already known to be well-formed) holds anything this host lacks. A
   * peer that may only read may still pass on what the host has (peers forward what they
   * receive); only a change is refused.
   */
  changes(update: Uint8Array): boolean
  /** Validates and applies presence from the peer of `from`; throws if it is refused. */
  applyAwareness(update: Uint8Array, from: SyncSession): void
  /** Every presence state the host knows, as one awareness update, or null if there is none. */
  awarenessStates(): Uint8Array | null
  /** `session` is bound to this host: forward to it once it is live. */
  attach(session: SyncSession): void
  /** `session` ended: stop forwarding to it and drop the presence its peer brought. */
  detach(session: SyncSession): void
  /** The peer of `session` answered this node's `open`, and got what it lacked in return: the document completed a sync with it. */
  synced(session: SyncSession): void
  /** The peer of `session` acknowledged every update sent to it up to one that included `localChanges` local changes. */
  acknowledged(session: SyncSession, localChanges: number): void
}

/** Frames already encoded for one broadcast, shared by every session with the same framing. */
export class FrameCache {
  private readonly frames = new Map<object, Uint8Array>()

  /** The frame for `key` (a framing), encoding it with `encode` the first time. */
  get (key: object, encode: () => Uint8Array): Uint8Array {
    let frame = this.frames.get(key)
    if (frame === undefined) {
      frame = encode()
      this.frames.set(key, frame)
    }
    return frame
  }
}

/** The sessions of one document: where its updates and presence changes go. */
export class SessionSet implements Iterable<SyncSession> {
  private readonly sessions = new Set<SyncSession>()

  add (session: SyncSession): void {
    this.sessions.add(session)
  }

  delete (session: SyncSession): void {
    this.sessions.delete(session)
  }

  get size (): number {
    return this.sessions.size
  }

  [Symbol.iterator] (): Iterator<SyncSession> {
    return this.sessions[Symbol.iterator]()
  }

  /**
   * Sends `update` to every live session except `origin`'s (a session, or null for a local
   * change). `localChanges` is the host's count of local changes shared so far.
   */
  forwardUpdate (update: Uint8Array, origin: SyncSession | null, localChanges = 0): void {
    const frames = new FrameCache()
    for (const session of this.sessions) {
      if (session !== origin) session.forwardUpdate(update, localChanges, frames)
    }
  }

  /** Sends a presence change to every live session except `origin`'s. */
  forwardAwareness (update: Uint8Array, origin: SyncSession | null): void {
    const frames = new FrameCache()
    for (const session of this.sessions) {
      if (session !== origin) session.forwardAwareness(update, frames)
    }
  }
}
