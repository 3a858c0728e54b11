/**
 * Sets of Yjs ids: per client, sorted disjoint clock ranges. A relay that stores updates
 * without integrating them keeps two of these per document (the structs it holds and the
 * deletions it knows) to tell a new update from one it already has, and to derive its
 * state vector. Updates mostly extend a client's last range, which is the fast path.
 */
export class IdRanges {
  /** Per client, flat [start, end, start, end, …], sorted, with no two ranges touching. */
  private clients = NO_CLIENTS
  /** Clients whose ranges are not one range from 0. */
  private gapped = 0

  /** Whether every clock in [clock, clock + length) of `client` is in the set. */
  covers (client: number, clock: number, length: number): boolean {
    if (length <= 0) return true
    const ranges = this.clients.get(client)
    if (ranges === undefined) return false
    const i = this.lastStartingAtOrBefore(ranges, clock)
    return i >= 0 && ranges[i + 1]! >= clock + length
  }

  /** Adds [clock, clock + length) of `client`. */
  add (client: number, clock: number, length: number): void {
    if (length <= 0) return
    const ranges = this.clients.get(client)
    if (ranges === undefined) {
      if (this.clients === NO_CLIENTS) this.clients = new Map()
      this.clients.set(client, [clock, clock + length])
      if (clock !== 0) this.gapped++
      return
    }
    const wasGapped = isGapped(ranges)
    this.merge(ranges, clock, length)
    this.gapped += Number(isGapped(ranges)) - Number(wasGapped)
  }

  private merge (ranges: number[], clock: number, length: number): void {
    const end = clock + length
    const last = ranges.length - 2
    if (clock >= ranges[last]! && clock <= ranges[last + 1]!) {
      ranges[last + 1] = Math.max(ranges[last + 1]!, end)
      return
    }
    // General case: merge with every range it overlaps or touches.
    let from = this.lastStartingAtOrBefore(ranges, clock)
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

  /** The client's clock up to which the set has every id from 0 (its state-vector entry). */
  contiguousEnd (client: number): number {
    const ranges = this.clients.get(client)
    return ranges !== undefined && ranges[0] === 0 ? ranges[1]! : 0
  }

  /** Whether some client has ids missing below ones the set holds. */
  hasGaps (): boolean {
    return this.gapped > 0
  }

  /** Every client's {@link contiguousEnd}, where non-zero. */
  stateVector (): Map<number, number> {
    const vector = new Map<number, number>()
    for (const client of this.clients.keys()) {
      const end = this.contiguousEnd(client)
      if (end > 0) vector.set(client, end)
    }
    return vector
  }

  /** Index of the last range starting at or before `clock`, or -2 if none. */
  private lastStartingAtOrBefore (ranges: number[], clock: number): number {
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
}

/** The ranges of every empty set: shared, and never written to (see add). Most documents have no deletions. */
const NO_CLIENTS = new Map<number, number[]>()

const isGapped = (ranges: number[]): boolean => ranges.length > 2 || ranges[0] !== 0
