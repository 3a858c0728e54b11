/**
 * Presence on a relay document, with the semantics of y-protocols' Awareness (a state per
 * client id and a clock; a higher clock wins; a null state at the same clock removes) but
 * without a Y.Doc or a timer per document: states not renewed for 30 seconds expire,
 * swept by one timer shared by every document that has any. States are kept as the JSON
 * text they are sent as, not as parsed objects: a parsed `[{},{},...]` costs about fifteen
 * times its text.
 */
import * as encoding from 'lib0/encoding'
import { encodeAwarenessEntries, type AwarenessEntry } from '../../shared/wire/awareness.js'
import type { PresenceView } from '../../shared/validation/awareness.js'
import type { SyncSession } from '../../shared/sync/session.js'

/** Same as y-protocols: clients renew their state every 15 seconds. */
export const AWARENESS_TIMEOUT_MS = 30_000
const SWEEP_INTERVAL_MS = AWARENESS_TIMEOUT_MS / 10

interface Presence {
  clock: number
  /** The state, as JSON text. */
  json: string
  /** The session that brought it: only its peer may change or remove it (unless it is a relay; see `admitAwareness`). */
  owner: SyncSession
  renewedAt: number
}

/** The presence of every document that has none: shared, and never written to (see apply). */
const NO_STATES = new Map<number, Presence>()

const live = new Set<RelayAwareness>()
let sweeper: ReturnType<typeof setInterval> | null = null

function sweep (): void {
  const now = Date.now()
  for (const awareness of live) awareness.expire(now)
}

/** Takes `awareness` out of the sweep, stopping the sweep once nothing is left in it. */
function leave (awareness: RelayAwareness): void {
  live.delete(awareness)
  if (live.size === 0 && sweeper !== null) {
    clearInterval(sweeper)
    sweeper = null
  }
}

/** See the module comment. */
export class RelayAwareness implements PresenceView {
  private states = NO_STATES

  /** `onExpired` receives the removals caused by expiry, as one awareness update. */
  constructor (private readonly onExpired: (update: Uint8Array) => void) {}

  get size (): number {
    return this.states.size
  }

  has (clientId: number): boolean {
    return this.states.has(clientId)
  }

  /** The session that brought `clientId`'s state, or undefined if it has none. */
  ownerOf (clientId: number): SyncSession | undefined {
    return this.states.get(clientId)?.owner
  }

  /** Applies `entries` brought by `owner`; returns those that changed something, to forward. */
  apply (entries: AwarenessEntry[], owner: SyncSession): AwarenessEntry[] {
    const now = Date.now()
    if (this.states === NO_STATES) this.states = new Map()
    const applied = entries.filter(entry => {
      const current = this.states.get(entry.clientId)
      const clock = current?.clock ?? 0
      if (!(clock < entry.clock || (clock === entry.clock && entry.state === null && current !== undefined))) return false
      if (entry.state === null) this.states.delete(entry.clientId)
      else this.states.set(entry.clientId, { clock: entry.clock, json: JSON.stringify(entry.state), owner, renewedAt: now })
      return true
    })
    if (this.states.size > 0 && !live.has(this)) {
      live.add(this)
      sweeper ??= setInterval(sweep, SWEEP_INTERVAL_MS)
      sweeper.unref?.()
    }
    return applied
  }

  /** Removes the states set by `owner`; returns the removals, to broadcast. */
  removeOwnedBy (owner: SyncSession): AwarenessEntry[] {
    return this.remove(([, presence]) => presence.owner === owner)
  }

  /** Removes the states not renewed since `now` minus the timeout, and reports them. */
  expire (now: number): void {
    const expired = this.remove(([, presence]) => now - presence.renewedAt >= AWARENESS_TIMEOUT_MS)
    if (expired.length > 0) this.onExpired(encodeAwarenessEntries(expired))
  }

  /** Every state as one awareness update, or null if there is none. */
  encodeAll (): Uint8Array | null {
    if (this.states.size === 0) return null
    return encoding.encode(encoder => {
      encoding.writeVarUint(encoder, this.states.size)
      for (const [clientId, { clock, json }] of this.states) {
        encoding.writeVarUint(encoder, clientId)
        encoding.writeVarUint(encoder, clock)
        encoding.writeVarString(encoder, json)
      }
    })
  }

  /** Forgets every state and leaves the sweep. */
  destroy (): void {
    this.states.clear()
    leave(this)
  }

  private remove (which: (entry: [number, Presence]) => boolean): AwarenessEntry[] {
    const removed: AwarenessEntry[] = []
    for (const entry of this.states) {
      if (!which(entry)) continue
      this.states.delete(entry[0])
      removed.push({ clientId: entry[0], clock: entry[1].clock, state: null })
    }
    if (this.states.size === 0) leave(this)
    return removed
  }
}
