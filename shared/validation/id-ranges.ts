/**
 * Sets of Yjs ids: per client, sorted disjoint clock ranges. The checks of a document
 * (document-checks.ts, on a relay and on a replica alike) keep two of these, the structs it
 * holds and the deletions it knows, to tell a new update from one it already has without
 * integrating it; a relay, which holds updates rather than a Y.Doc, derives its state
 * vector from them too. Updates mostly extend a client's last range, which is the fast path.
 *
 * Most clients hold one range from clock 0: those cost one map entry (their end), the
 * others a map entry and an array. A document has at most `maxClientsPerDocument` clients.
 */
export class IdRanges {
  /** Clients whose ids are exactly [0, end): their end. */
  private whole = NO_WHOLE
  /** Every other client (each has a gap below some of its ids): flat [start, end, start, end, …], sorted, no two touching. */
  private split = NO_SPLIT

  /** Number of clients with ids in the set. */
  get clientCount (): number {
    return this.whole.size + this.split.size
  }

  /** Whether the set has ids of `client`. */
  has (client: number): boolean {
    return this.whole.has(client) || this.split.has(client)
  }

  /** Whether every clock in [clock, clock + length) of `client` is in the set. */
  covers (client: number, clock: number, length: number): boolean {
    if (length <= 0) return true
    const end = this.whole.get(client)
    if (end !== undefined) return clock + length <= end
    const ranges = this.split.get(client)
    if (ranges === undefined) return false
    const i = lastStartingAtOrBefore(ranges, clock)
    return i >= 0 && ranges[i + 1]! >= clock + length
  }

  /** Adds [clock, clock + length) of `client`. */
  add (client: number, clock: number, length: number): void {
    if (length <= 0) return
    const end = this.whole.get(client)
    if (end !== undefined) {
      if (clock <= end) {
        if (clock + length > end) this.whole.set(client, clock + length)
        return
      }
      // A gap after the client's ids: it moves to the general form.
      this.whole.delete(client)
      this.setSplit(client, [0, end, clock, clock + length])
      return
    }
    const ranges = this.split.get(client)
    if (ranges === undefined) {
      if (clock === 0) this.setWhole(client, length)
      else this.setSplit(client, [clock, clock + length])
      return
    }
    merge(ranges, clock, length)
    if (ranges.length === 2 && ranges[0] === 0) {
      this.split.delete(client)
      this.setWhole(client, ranges[1]!)
    }
  }

  /** The client's clock up to which the set has every id from 0 (its state-vector entry). */
  contiguousEnd (client: number): number {
    const end = this.whole.get(client)
    if (end !== undefined) return end
    const ranges = this.split.get(client)
    return ranges !== undefined && ranges[0] === 0 ? ranges[1]! : 0
  }

  /** Whether some client has ids missing below ones the set holds. */
  hasGaps (): boolean {
    return this.split.size > 0
  }

  /** Every client's {@link contiguousEnd}, where non-zero. */
  stateVector (): Map<number, number> {
    const vector = new Map(this.whole)
    for (const [client, ranges] of this.split) {
      if (ranges[0] === 0) vector.set(client, ranges[1]!)
    }
    return vector
  }

  /** Calls `visit` with every range of the set. */
  forEachRange (visit: (client: number, start: number, end: number) => void): void {
    for (const [client, end] of this.whole) visit(client, 0, end)
    for (const [client, ranges] of this.split) {
      for (let i = 0; i < ranges.length; i += 2) visit(client, ranges[i]!, ranges[i + 1]!)
    }
  }

  /** Whether every id of `other` is in this set. */
  includes (other: IdRanges): boolean {
    let included = true
    other.forEachRange((client, start, end) => { included &&= this.covers(client, start, end - start) })
    return included
  }

  /** Whether this set and `other` hold the same ids. */
  equals (other: IdRanges): boolean {
    return this.clientCount === other.clientCount && this.includes(other) && other.includes(this)
  }

  private setWhole (client: number, end: number): void {
    if (this.whole === NO_WHOLE) this.whole = new Map()
    this.whole.set(client, end)
  }

  private setSplit (client: number, ranges: number[]): void {
    if (this.split === NO_SPLIT) this.split = new Map()
    this.split.set(client, ranges)
  }
}

/** Merges [clock, clock + length) into `ranges`, joining every range it overlaps or touches. */
function merge (ranges: number[], clock: number, length: number): void {
  const end = clock + length
  const last = ranges.length - 2
  if (clock >= ranges[last]! && clock <= ranges[last + 1]!) {
    ranges[last + 1] = Math.max(ranges[last + 1]!, end)
    return
  }
  let from = lastStartingAtOrBefore(ranges, clock)
  if (from < 0 || ranges[from + 1]! < clock) from += 2
  let to = from
  let start = clock
  let stop = end
  while (to < ranges.length && ranges[to]! <= end) {
    start = Math.min(start, ranges[to]!)
    stop = Math.max(stop, ranges[to + 1]!)
    to += 2
  }
  ranges.splice(from, to - from, start, stop)
}

/** Index of the last range of `ranges` starting at or before `clock`, or -2 if none. */
function lastStartingAtOrBefore (ranges: number[], clock: number): number {
  let low = 0
  let high = ranges.length / 2 - 1
  let found = -2
  while (low <= high) {
    const mid = (low + high) >> 1
    if (ranges[mid * 2]! <= clock) {
      found = mid * 2
      low = mid + 1
    } else {
      high = mid - 1
    }
  }
  return found
}

/** The maps of every empty set: shared, and never written to (see setWhole, setSplit). Most documents have no deletions. */
const NO_WHOLE = new Map<number, number>()
const NO_SPLIT = new Map<number, number[]>()
