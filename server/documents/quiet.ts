/**
 * Lets documents give up, once quiet, what they keep only to be fast while busy (cached
 * encodings and answers, indexes, updates not merged yet): a relay holds thousands of open
 * documents that are idle most of the time. One timer serves every document, and runs only
 * while some document was busy recently.
 */

/** How long a document has to be left alone before it sheds what it keeps for speed. */
export const QUIET_MS = 1000
/** A document sheds at most this much later than it could (the sweep stops at the first document still busy: it is cheap). */
const SWEEP_INTERVAL_MS = QUIET_MS / 4
/** Sweeps after the one a document was last busy before it, so that it has been quiet for at least {@link QUIET_MS}. */
const QUIET_SWEEPS = QUIET_MS / SWEEP_INTERVAL_MS + 1

/** Something that keeps memory for speed while busy. */
export interface Shedding {
  /** Called once it has been left alone for {@link QUIET_MS}: give up what is only there for speed. */
  shed(): void
}

/** Sweeps so far: activity is recorded by sweep, not by clock, so that most calls to keepBusy find nothing to do. */
let sweeps = 0
/** The sweep each busy document was last busy before, in that order. */
const busy = new Map<Shedding, number>()
let sweeper: ReturnType<typeof setInterval> | null = null

/** `doc` is busy now: it sheds once it has been left alone for {@link QUIET_MS}. */
export function keepBusy (doc: Shedding): void {
  if (busy.get(doc) === sweeps) return // a write per update would otherwise reorder the map every time
  busy.delete(doc) // re-inserted last: the map stays in the order of last activity
  busy.set(doc, sweeps)
  if (sweeper === null) {
    sweeper = setInterval(sweep, SWEEP_INTERVAL_MS)
    sweeper.unref?.()
  }
}

/** `doc` is going away: it is not swept any more. */
export function forget (doc: Shedding): void {
  busy.delete(doc)
  if (busy.size === 0) stop()
}

function sweep (): void {
  sweeps++
  for (const [doc, since] of busy) {
    if (sweeps - since < QUIET_SWEEPS) break // the rest were busy later still
    busy.delete(doc)
    doc.shed()
  }
  if (busy.size === 0) stop()
}

function stop (): void {
  if (sweeper !== null) clearInterval(sweeper)
  sweeper = null
}
