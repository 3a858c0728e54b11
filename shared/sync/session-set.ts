/**
 * The sessions of one document, as its host holds them: a document has any number of
 * sessions at once, one per peer, and forwards every new update and presence change to all
 * of them except the one it came from, encoding each message once per framing.
 */
import { FrameCache } from './frames.js'
import type { SyncSession } from './session.js'

/** The sessions of one document: where its updates and presence changes go (a Set itself, not a wrapper around one: a relay keeps one per open document). */
export class SessionSet extends Set<SyncSession> {
  /**
   * Sends `update` to every live session except `origin`'s (a session, or null for a local
   * change). `localChanges` is the host's count of local changes shared so far.
   */
  forwardUpdate (update: Uint8Array, origin: SyncSession | null, localChanges = 0): void {
    const frames = new FrameCache()
    for (const session of this) {
      if (session !== origin) session.forwardUpdate(update, localChanges, frames)
    }
  }

  /** Sends a presence change to every live session except `origin`'s. */
  forwardAwareness (update: Uint8Array, origin: SyncSession | null): void {
    const frames = new FrameCache()
    for (const session of this) {
      if (session !== origin) session.forwardAwareness(update, frames)
    }
  }
}
