/**
 * The document side of update validation: for every stored id, the list it is in (see
 * list-key.ts) and whether it is a type item, kept as runs of ids rather than as a Y.Doc.
 * It refuses items that Yjs would integrate differently on different replicas:
 *
 * - an item whose origin and right origin are in different lists: Yjs puts it into its
 *   origin's list and scans that list for its right origin, which is not there; where it
 *   lands then depends on the order in which replicas received concurrent items;
 * - an item whose parent id is an item that is not a type (Yjs quietly turns it into a GC
 *   struct on some replicas while others still hold it);
 * - an item that re-sends ids the document holds, continuing them in another list;
 * - references that lead around in a circle.
 *
 * An item's list is known from its parent if it names one, otherwise from its origin (or
 * its right origin), whose list may itself be known only from its own origin: runs keep
 * such a pointer until it is first followed, then the list found (path compression).
 * Items referring to ids the document does not hold yet wait for them (as Yjs does): what
 * they refer to is checked when it is known, and what is not known yet is not checked.
 *
 * Memory: four numbers per run of ids with the same list and kind (a run per typing burst,
 * not per character), at most about one per five bytes of the stored updates.
 */
import { ProtocolError } from '../errors.js'
import { NO_ID } from './update-reader.js'
import { Run, RunKind, type UpdateShape } from './update-shape.js'

/** A list value: the id's item was garbage-collected with its parent, any list goes. */
const GONE = -1
/** What {@link ItemIndex.listOf} returns for an id that leads to an id not held. */
const UNKNOWN = -2
/** List values from -3 down are pointers: entry -3 - value of the pointer table. */
const FIRST_POINTER = -3
/** A run of the update being checked whose list is being looked for (a cycle if met again). */
const VISITING = -4
/** A run of the update being checked whose list has not been looked for yet. */
const UNVISITED = -5

/** Fields of an index run: [start, end, list, kind]. */
const STRIDE = 4

const refuse = (what: string): ProtocolError => new ProtocolError(`invalid Yjs update: ${what}`)

/** Where one update's runs are, per client, while it is checked against the index. */
class UpdateView {
  /** Per client, [first, last + 1) run indices (a client's runs are consecutive, in clock order). */
  readonly blocks = new Map<number, [number, number]>()
  /** Per run: its list once known, UNKNOWN if it waits, VISITING or UNVISITED. */
  readonly lists: Float64Array

  constructor (readonly runs: ArrayLike<number>) {
    const count = runs.length / Run.size
    this.lists = new Float64Array(count).fill(UNVISITED)
    for (let r = 0; r < count; r++) {
      const client = runs[r * Run.size + Run.client]!
      const block = this.blocks.get(client)
      if (block === undefined) this.blocks.set(client, [r, r + 1])
      else block[1] = r + 1
    }
  }

  /** The run holding `client:clock`, or -1. */
  find (client: number, clock: number): number {
    const block = this.blocks.get(client)
    if (block === undefined) return -1
    let [low, high] = block
    high--
    while (low <= high) {
      const mid = (low + high) >> 1
      const at = mid * Run.size
      if (clock < this.runs[at + Run.start]!) high = mid - 1
      else if (clock >= this.runs[at + Run.end]!) low = mid + 1
      else return mid
    }
    return -1
  }

  field (run: number, field: number): number {
    return this.runs[run * Run.size + field]!
  }
}

/** See the module comment. Build it with {@link ItemIndex.of}, then {@link check} and {@link add} each update. */
export class ItemIndex {
  /** Per client, flat runs of {@link STRIDE} numbers, sorted by start, disjoint. */
  private readonly clients = new Map<number, number[]>()
  /** Pointer table: flat [client, clock] of the id whose list a run shares. */
  private pointers: number[] = []
  private runCount = 0

  /**
   * Whether checking `shape` needs a document's items beyond what re-sends held ids: some
   * item has a right origin or names a parent item. (An item with only an origin goes after
   * it wherever it is; only the index itself needs to know where that is.)
   */
  static needed ({ runs }: UpdateShape): boolean {
    for (let at = 0; at < runs.length; at += Run.size) {
      if (runs[at + Run.rightClient] !== NO_ID || runs[at + Run.parentClient] !== NO_ID) return true
    }
    return false
  }

  /** The index of a document made of `shapes` (its stored updates, inspected). */
  static of (shapes: Iterable<UpdateShape>): ItemIndex {
    const index = new ItemIndex()
    for (const shape of shapes) index.add(shape, null)
    index.resolveAll()
    return index
  }

  /**
   * Throws a ProtocolError if an item of `shape` does not fit the document (see the module
   * comment). Returns what {@link add} needs to record it.
   */
  check (shape: UpdateShape): Float64Array {
    const view = new UpdateView(shape.runs)
    const { runs } = view
    for (let r = 0; r < view.lists.length; r++) {
      const at = r * Run.size
      if (runs[at + Run.kind] === RunKind.gc) {
        view.lists[r] = GONE
        continue
      }
      const client = runs[at + Run.client]!
      const start = runs[at + Run.start]!
      const held = this.heldEnd(client, start)
      if (held >= runs[at + Run.end]!) {
        // Replicas that hold these ids ignore them; the others get the same item again.
        if (view.lists[r] === UNVISITED) view.lists[r] = UNKNOWN
        continue
      }
      const parentClient = runs[at + Run.parentClient]!
      if (parentClient !== NO_ID && this.kindOf(parentClient, runs[at + Run.parentClock]!, view) === RunKind.content) {
        throw refuse(`the parent of item ${client}:${start} is not a type`)
      }
      const list = this.listOfRun(r, view)
      const rightClient = runs[at + Run.rightClient]!
      if (rightClient !== NO_ID) {
        const right = this.listOf(rightClient, runs[at + Run.rightClock]!, view)
        if (list >= 0 && right >= 0 && list !== right) throw refuse(`item ${client}:${start} has its origin and right origin in different lists`)
      }
      if (held > start) {
        const before = this.listOf(client, held - 1, view)
        if (list >= 0 && before >= 0 && list !== before) throw refuse(`item ${client}:${start} continues held ids in another list`)
      }
    }
    return view.lists
  }

  /** Records the ids of `shape` the index does not hold yet; `lists` is what {@link check} returned, if it ran. */
  add (shape: UpdateShape, lists: Float64Array | null): void {
    const runs = shape.runs
    for (let r = 0, at = 0; at < runs.length; r++, at += Run.size) {
      const client = runs[at + Run.client]!
      const start = runs[at + Run.start]!
      const end = runs[at + Run.end]!
      if (this.heldEnd(client, start) >= end) continue
      const known = lists === null ? UNKNOWN : lists[r]!
      const list = runs[at + Run.kind] === RunKind.gc ? GONE : known >= GONE ? known : this.reference(runs, at)
      this.insert(client, start, end, list, runs[at + Run.kind]!)
    }
  }

  /** The list value a run starts with when its list is not known: its parent's list, or a pointer to its origin (or right origin). */
  private reference (runs: ArrayLike<number>, at: number): number {
    const list = runs[at + Run.list]!
    if (list >= 0) return list
    const useOrigin = runs[at + Run.originClient] !== NO_ID
    this.pointers.push(runs[at + (useOrigin ? Run.originClient : Run.rightClient)]!, runs[at + (useOrigin ? Run.originClock : Run.rightClock)]!)
    return FIRST_POINTER - (this.pointers.length / 2 - 1)
  }

  /** The list of run `r` of the update being checked (see {@link listOf}). */
  private listOfRun (r: number, view: UpdateView): number {
    const known = view.lists[r]!
    if (known !== UNVISITED) {
      if (known === VISITING) throw refuse('references lead around in a circle')
      return known
    }
    const explicit = view.field(r, Run.list)
    if (explicit >= 0) return (view.lists[r] = explicit)
    const useOrigin = view.field(r, Run.originClient) !== NO_ID
    view.lists[r] = VISITING
    const list = this.listOf(view.field(r, useOrigin ? Run.originClient : Run.rightClient), view.field(r, useOrigin ? Run.originClock : Run.rightClock), view)
    view.lists[r] = list
    return list
  }

  /**
   * The list of the item holding `client:clock` (held here, or in the update being checked):
   * a list key, GONE, or UNKNOWN if its references lead to an id nobody holds yet. Follows
   * pointers iteratively (chains can be as long as the document has runs) and shortens them,
   * but those of the index only with what the index alone says: the update may be refused.
   */
  private listOf (client: number, clock: number, view: UpdateView | null): number {
    const path: Array<number[] | number> = []
    let steps = 0
    let list = UNKNOWN
    let throughUpdate = false
    for (;;) {
      if (++steps > this.runCount + (view?.lists.length ?? 0) + 1) throw refuse('references lead around in a circle')
      const runs = this.clients.get(client)
      const at = runs === undefined ? -1 : find(runs, clock)
      if (at >= 0) {
        const value = runs![at + 2]!
        if (value >= GONE) {
          list = value
          break
        }
        path.push(runs!, at)
        const pointer = (FIRST_POINTER - value) * 2
        client = this.pointers[pointer]!
        clock = this.pointers[pointer + 1]!
        continue
      }
      const r = view === null ? -1 : view.find(client, clock)
      if (r < 0) break
      throughUpdate = true
      const known = view!.lists[r]!
      if (known === VISITING) throw refuse('references lead around in a circle')
      if (known !== UNVISITED) {
        list = known
        break
      }
      const explicit = view!.field(r, Run.list)
      if (explicit >= 0) {
        list = view!.lists[r] = explicit
        break
      }
      view!.lists[r] = VISITING
      path.push(r)
      const useOrigin = view!.field(r, Run.originClient) !== NO_ID
      client = view!.field(r, useOrigin ? Run.originClient : Run.rightClient)
      clock = view!.field(r, useOrigin ? Run.originClock : Run.rightClock)
    }
    // Every run on the way shares the list found.
    for (let i = 0; i < path.length; i++) {
      const step = path[i]!
      if (typeof step === 'number') view!.lists[step] = list
      else if (list !== UNKNOWN && !throughUpdate) step[path[++i] as number + 2] = list
      else i++
    }
    return list
  }

  /** The kind of the item holding `client:clock`, or -1 if it is not held. */
  private kindOf (client: number, clock: number, view: UpdateView): number {
    const runs = this.clients.get(client)
    const at = runs === undefined ? -1 : find(runs, clock)
    if (at >= 0) return runs![at + 3]!
    const r = view.find(client, clock)
    return r < 0 ? -1 : view.field(r, Run.kind)
  }

  /** The end of the stretch of held ids of `client` from `clock` on (`clock` if it is not held). */
  private heldEnd (client: number, clock: number): number {
    const runs = this.clients.get(client)
    if (runs === undefined) return clock
    let at = find(runs, clock)
    if (at < 0) return clock
    let end = runs[at + 1]!
    while ((at += STRIDE) < runs.length && runs[at] === end) end = runs[at + 1]!
    return end
  }

  /** Adds the ids of [start, end) not held yet, as runs of `list` and `kind`. */
  private insert (client: number, start: number, end: number, list: number, kind: number): void {
    let runs = this.clients.get(client)
    if (runs === undefined) this.clients.set(client, runs = [])
    const last = runs.length - STRIDE
    if (last < 0 || runs[last + 1]! <= start) {
      if (last >= 0 && runs[last + 1] === start && runs[last + 2] === list && runs[last + 3] === kind) {
        runs[last + 1] = end
      } else {
        runs.push(start, end, list, kind)
        this.runCount++
      }
      return
    }
    // Out of order (an update that filled a gap, or a part loaded after a later one): fill the holes only.
    let i = firstEndingAfter(runs, start)
    let cursor = start
    while (cursor < end) {
      if (i < runs.length && runs[i]! <= cursor) {
        cursor = Math.max(cursor, runs[i + 1]!)
        i += STRIDE
        continue
      }
      const stop = i < runs.length ? Math.min(end, runs[i]!) : end
      runs.splice(i, 0, cursor, stop, list, kind)
      this.runCount++
      i += STRIDE
      cursor = stop
    }
  }

  /** Follows every pointer once, so that lookups find lists directly; drops the pointer table if nothing waits. */
  private resolveAll (): void {
    let waiting = false
    for (const runs of this.clients.values()) {
      for (let at = 0; at < runs.length; at += STRIDE) {
        const value = runs[at + 2]!
        if (value >= GONE) continue
        const pointer = (FIRST_POINTER - value) * 2
        const list = this.listOf(this.pointers[pointer]!, this.pointers[pointer + 1]!, null)
        if (list === UNKNOWN) waiting = true
        else runs[at + 2] = list
      }
    }
    if (!waiting) this.pointers = []
  }
}

/** Offset of the run of `runs` holding `clock`, or -1. */
function find (runs: number[], clock: number): number {
  let low = 0
  let high = runs.length / STRIDE - 1
  while (low <= high) {
    const mid = (low + high) >> 1
    const at = mid * STRIDE
    if (clock < runs[at]!) high = mid - 1
    else if (clock >= runs[at + 1]!) low = mid + 1
    else return at
  }
  return -1
}

/** Offset of the first run of `runs` ending after `clock` (`runs.length` if none). */
function firstEndingAfter (runs: number[], clock: number): number {
  let low = 0
  let high = runs.length / STRIDE
  while (low < high) {
    const mid = (low + high) >> 1
    if (runs[mid * STRIDE + 1]! <= clock) low = mid + 1
    else high = mid
  }
  return low * STRIDE
}
