/**
 * Lets documents give up, once quiet, what they keep only to be fast while busy (cached
 * encodings and answers, indexes, updates not merged yet): a relay holds thousands of open
 * documents that are idle most of the time. One timer serves every document, and runs only
 * while some document was busy recently.
 */

/** How long a document has to be left alone before it settles. */
export const QUIET_MS = 1000
/** A document settles at most this much later than it could (the sweep stops at the first document still busy: it is cheap). */
const SWEEP_INTERVAL_MS = QUIET_MS / 4

/** Something that keeps memory for speed while busy. */
export interface Settling {
  /** Called once it has been left alone for {@link QUIET_MS}: give up what is only there for speed. */
  settle(): void
}

/** When each busy document was last busy. */
const busy = new Map<Settling, number>()
let sweeper: ReturnType<typeof setInterval> | null = null

/** `doc` is busy now: it settles once it has been left alone for {@link QUIET_MS}. */
export function keepBusy (doc: Settling): void {
  busy.delete(doc) // re-inserted last: the map stays in the order of last activity
  busy.set(doc, Date.now())
  if (sweeper === null) {
    sweeper = setInterval(sweep, SWEEP_INTERVAL_MS)
    sweeper.unref?.()
  }
}

/** `doc` is going away: it is not settled any more. */
export function forget (doc: Settling): void {
  busy.delete(doc)
  if (busy.size === 0) stop()
}

function sweep (): void {
  const now = Date.now()
  for (const [doc, since] of busy) {
    if (now - since < QUIET_MS) break // the rest were busy later still
    busy.delete(doc)
    doc.settle()
  }
  if (busy.size === 0) stop()
}

function stop (): void {
  if (sweeper !== null) clearInterval(sweeper)
  sweeper = null
}
