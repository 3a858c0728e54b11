/**
 * Structural validation of a Yjs (v1) update: everything that can be checked without the
 * document it is for. Yjs's decoder accepts shapes that its integration or its merging then
 * mishandles, and that Yjs itself never writes; each check below refuses one of them:
 *
 * - a client with two sections (or an empty one): `Y.applyUpdate` keeps only the last
 *   section of a client, `Y.mergeUpdates` all of them, so replicas disagree;
 * - an item whose origin, right origin or parent is its own id or a later id of its own
 *   client: Yjs integrates a client's structs in clock order and looks such an id up
 *   before it exists (it throws, midway through the update);
 * - lengths of zero and clocks beyond 2^53 (a struct or deletion of length zero would be
 *   new to the relay forever);
 * - trailing bytes.
 *
 * Sections in ascending client order (Yjs writes them in descending order) integrate
 * correctly but `Y.mergeUpdates` drops some of their structs: such an update is
 * normalised, its sections reordered byte for byte, rather than refused.
 *
 * The result also describes the update compactly for the checks that need the document
 * (see `ItemIndex`): which ids it holds and deletes, and its items grouped into runs.
 */
import * as encoding from 'lib0/encoding'
import { ProtocolError } from '../errors.js'
import { nestedListKey, rootListKey } from './list-key.js'
import { Content, NO_ID, StructKind, UpdateReader } from './update-reader.js'

/** What the ids of a run are. */
export const RunKind = {
  /** Items with content other than a type. */
  content: 0,
  /** Type items (a map, array, text or XML node others can be inside of). */
  type: 1,
  /** Items whose content was garbage-collected (`ContentDeleted`): possibly types once. */
  deleted: 2,
  /** GC structs: ids whose item and parent are gone. */
  gc: 3
} as const

/**
 * Field offsets of one run in {@link UpdateShape.runs}. A run is a sequence of structs of
 * one client with consecutive clocks, of one kind, each item's origin the id before it and
 * all with the first item's right origin: they all share the first item's list.
 */
export const Run = {
  client: 0,
  start: 1,
  end: 2,
  kind: 3,
  /** The first item's origin and right origin ({@link NO_ID} if absent). */
  originClient: 4,
  originClock: 5,
  rightClient: 6,
  rightClock: 7,
  /** The key of the list the first item names (see list-key.ts), or -1 if it names none. */
  list: 8,
  /** The type item the first item names as its parent, or {@link NO_ID}. */
  parentClient: 9,
  parentClock: 10,
  size: 11
} as const

/** One client's section: the clock ranges of its structs, Skips left out. */
export interface Section {
  client: number
  /** Flat [start, end) pairs in clock order. */
  ranges: number[]
}

/** See {@link inspectUpdate}. */
export interface UpdateShape {
  /** The update to store and forward: the bytes received, or their normalised form. */
  readonly bytes: Uint8Array
  /** Sections in descending client order. */
  readonly sections: Section[]
  /** Deleted ranges per client, flat [start, end) pairs as written. */
  readonly deletions: ReadonlyMap<number, number[]>
  /** Item and GC runs, {@link Run.size} numbers each, in the order written. */
  readonly runs: ArrayLike<number>
  /** Other clients' ids the items refer to: per client, the highest clock referred to. */
  readonly references: ReadonlyMap<number, number>
}

/** Thrown by {@link inspectUpdate} when an update names more clients than allowed. */
export class TooManyClientsError extends Error {
  override name = 'TooManyClientsError'
  constructor (readonly limit: number) {
    super(`an update names more than ${limit} clients`)
  }
}

/** The empty map of every update without references or deletions: never written to (see inspect). */
const NONE = new Map<never, never>()

/** Runs the shared buffer keeps room for after an inspection; a larger update gets its room back when it is done. */
const MAX_SHARED_RUNS = 4096
const malformed = (what: string): ProtocolError => new ProtocolError(`malformed Yjs update: ${what}`)
const invalid = (what: string): ProtocolError => new ProtocolError(`invalid Yjs update: ${what}`)
const safe = Number.isSafeInteger

/**
 * Validates `update` (see the module comment) and describes it. Throws a ProtocolError
 * saying what is wrong, or a {@link TooManyClientsError} once it has named more than
 * `maxClients` clients: memory is bounded by the bytes and by that count, however many
 * structs the update claims. Costs one pass over the bytes.
 */
export function inspectUpdate (update: Uint8Array, maxClients = Infinity): UpdateShape {
  try {
    return inspect(update, maxClients)
  } catch (error) {
    if (error instanceof ProtocolError || error instanceof TooManyClientsError) throw error
    throw malformed((error as Error).message)
  } finally {
    RunBuffer.shrink()
    UpdateReader.releaseShared()
    inspection?.release()
  }
}

/**
 * The state of one inspection: the clients named so far (a Set only once there are two:
 * most updates name one), the references and deletions found, where sections start. One
 * object shared by every inspection (they run one at a time), started afresh by each, so
 * that inspecting an update allocates only what its shape keeps.
 */
class Inspection {
  maxClients = Infinity
  private first = NO_ID
  private clients: Set<number> | null = null
  // Most updates refer to no other client and delete nothing: no map for them.
  references: Map<number, number> = NONE
  deletions: Map<number, number[]> = NONE
  readonly sectionStarts: number[] = []
  readonly runs = new RunBuffer()

  start (maxClients: number): void {
    this.maxClients = maxClients
    this.first = NO_ID
    this.clients = null
    this.references = NONE
    this.deletions = NONE
    this.sectionStarts.length = 0
    this.runs.reset()
  }

  /** Lets go of what the last shape took (its maps), once the inspection is done. */
  release (): void {
    this.references = NONE
    this.deletions = NONE
    this.clients = null
  }

  named (client: number): boolean {
    return client === this.first || this.clients?.has(client) === true
  }

  name (client: number): void {
    if (!safe(client)) throw malformed('invalid client id')
    if (this.first === NO_ID) this.first = client
    else (this.clients ??= new Set([this.first])).add(client)
    if ((this.clients?.size ?? 1) > this.maxClients) throw new TooManyClientsError(this.maxClients)
  }

  refer (client: number, clock: number): void {
    if (this.references === NONE) this.references = new Map()
    if ((this.references.get(client) ?? -1) < clock) this.references.set(client, clock)
  }

  /** A range of the delete set (a property, not a method: it is passed to the reader as is). */
  readonly deleted = (client: number, clock: number, length: number): void => {
    if (!safe(client) || !safe(clock) || length < 1 || !safe(clock + length)) throw malformed('invalid deletion')
    if (this.deletions === NONE) this.deletions = new Map()
    let ranges = this.deletions.get(client)
    if (ranges === undefined) {
      if (!this.named(client)) this.name(client)
      this.deletions.set(client, ranges = [])
    }
    ranges.push(clock, clock + length)
  }
}

/** Made on first use: RunBuffer is declared further down. */
let inspection: Inspection | null = null

function inspect (bytes: Uint8Array, maxClients: number): UpdateShape {
  const reader = UpdateReader.shared(bytes)
  const state = inspection ??= new Inspection()
  state.start(maxClients)
  const { runs, sectionStarts } = state
  const sections: Section[] = []
  let descending = true
  while (reader.nextSection()) {
    const client = reader.client
    if (reader.sectionStructs === 0) throw invalid(`an empty section for client ${client}`)
    if (state.named(client)) throw invalid(`two sections for client ${client}`)
    state.name(client)
    if (sections.length > 0 && client > sections[sections.length - 1]!.client) descending = false
    const section: Section = { client, ranges: [] }
    sections.push(section)
    sectionStarts.push(reader.sectionStart)
    while (reader.nextStruct()) {
      const { clock, length } = reader
      if (!safe(clock) || length < 1 || !safe(clock + length)) throw malformed('invalid struct')
      if (reader.kind === StructKind.skip) continue
      const ranges = section.ranges
      if (ranges.length > 0 && ranges[ranges.length - 1] === clock) ranges[ranges.length - 1] = clock + length
      else ranges.push(clock, clock + length)
      if (reader.kind === StructKind.gc) addGc(runs, client, clock, length)
      else addItem(runs, reader, state)
    }
  }
  const structsEnd = reader.pos
  reader.readDeleteSet(state.deleted)
  // Beyond the end: a length claimed more than the update has (see update-reader.ts).
  if (reader.pos > bytes.length) throw malformed('a length runs past the end of the update')
  if (reader.pos < bytes.length) throw malformed('trailing bytes after the delete set')
  const { deletions, references } = state
  if (descending) return { bytes, sections, deletions, runs: runs.used(), references }
  return { bytes: descendingSections(bytes, sections, sectionStarts, structsEnd), sections: sortedDescending(sections), deletions, runs: runs.used(), references }
}

/**
 * Runs being collected, in a Float64Array grown by doubling (appending to a plain array one
 * number at a time costs several times more) and shared by every inspection: one runs at a
 * time, and keeps a copy of what it used.
 */
class RunBuffer {
  private static shared = new Float64Array(Run.size * 64)
  data = RunBuffer.shared
  length = 0

  /** Starts collecting afresh, in the shared buffer. */
  reset (): void {
    this.data = RunBuffer.shared
    this.length = 0
  }

  /** Offset of the last run, or -1. */
  get last (): number {
    return this.length - Run.size
  }

  push (client: number, start: number, end: number, kind: number, originClient: number, originClock: number, rightClient: number, rightClock: number, list: number, parentClient: number, parentClock: number): void {
    if (this.length + Run.size > this.data.length) {
      const grown = new Float64Array(this.data.length * 2)
      grown.set(this.data)
      this.data = grown
      RunBuffer.shared = grown
    }
    const data = this.data
    const at = this.length
    data[at + Run.client] = client
    data[at + Run.start] = start
    data[at + Run.end] = end
    data[at + Run.kind] = kind
    data[at + Run.originClient] = originClient
    data[at + Run.originClock] = originClock
    data[at + Run.rightClient] = rightClient
    data[at + Run.rightClock] = rightClock
    data[at + Run.list] = list
    data[at + Run.parentClient] = parentClient
    data[at + Run.parentClock] = parentClock
    this.length = at + Run.size
  }

  /**
   * The runs collected: the buffer itself if it outgrew what is shared (it is given away),
   * else a copy in a plain array (allocating a small typed array costs more than filling a
   * small array).
   */
  used (): ArrayLike<number> {
    if (this.data.length > MAX_SHARED_RUNS * Run.size) return this.data.subarray(0, this.length)
    const copy = new Array<number>(this.length)
    for (let i = 0; i < this.length; i++) copy[i] = this.data[i]!
    return copy
  }

  /** Gives the shared buffer back its usual size after a large update, used or refused. */
  static shrink (): void {
    if (RunBuffer.shared.length > MAX_SHARED_RUNS * Run.size) RunBuffer.shared = new Float64Array(Run.size * 64)
  }
}

function addGc (buffer: RunBuffer, client: number, clock: number, length: number): void {
  const last = buffer.last
  const runs = buffer.data
  if (last >= 0 && runs[last + Run.kind] === RunKind.gc && runs[last + Run.client] === client && runs[last + Run.end] === clock) {
    runs[last + Run.end] = clock + length
    return
  }
  buffer.push(client, clock, clock + length, RunKind.gc, NO_ID, 0, NO_ID, 0, -1, NO_ID, 0)
}

function addItem (buffer: RunBuffer, item: UpdateReader, state: Inspection): void {
  const { client, clock, length } = item
  const kind = item.content === Content.type ? RunKind.type : item.content === Content.deleted ? RunKind.deleted : RunKind.content
  checkReference(item, item.originClient, item.originClock, 'origin', state)
  checkReference(item, item.rightClient, item.rightClock, 'right origin', state)
  checkReference(item, item.parentClient, item.parentClock, 'parent', state)
  const last = buffer.last
  const runs = buffer.data
  const continues = last >= 0 &&
    runs[last + Run.client] === client && runs[last + Run.end] === clock && runs[last + Run.kind] === kind &&
    item.originClient === client && item.originClock === clock - 1 &&
    runs[last + Run.rightClient] === item.rightClient && runs[last + Run.rightClock] === (item.rightClient === NO_ID ? 0 : item.rightClock)
  if (continues) {
    runs[last + Run.end] = clock + length
    return
  }
  const list = item.parentName !== null
    ? rootListKey(item.parentName, item.parentSub)
    : item.parentClient !== NO_ID ? nestedListKey(item.parentClient, item.parentClock, item.parentSub) : -1
  buffer.push(
    client, clock, clock + length, kind,
    item.originClient, item.originClient === NO_ID ? 0 : item.originClock,
    item.rightClient, item.rightClient === NO_ID ? 0 : item.rightClock,
    list, item.parentClient, item.parentClient === NO_ID ? 0 : item.parentClock
  )
}

/** Refuses a reference to the item's own id or a later one of its client; notes other clients' ids. */
function checkReference (item: UpdateReader, client: number, clock: number, what: string, state: Inspection): void {
  if (client === NO_ID) return
  if (!safe(client) || !safe(clock)) throw malformed(`invalid ${what}`)
  if (client !== item.client) return state.refer(client, clock)
  if (clock >= item.clock) throw invalid(`item ${item.client}:${item.clock} has its own or a later id as its ${what}`)
}

const sortedDescending = (sections: Section[]): Section[] => [...sections].sort((a, b) => b.client - a.client)

/** `bytes` with its sections in descending client order: a v1 section is one contiguous slice. */
function descendingSections (bytes: Uint8Array, sections: Section[], starts: number[], structsEnd: number): Uint8Array {
  const slices = sections.map((section, i) => ({ client: section.client, start: starts[i]!, end: starts[i + 1] ?? structsEnd }))
  slices.sort((a, b) => b.client - a.client)
  return encoding.encode(encoder => {
    encoding.writeVarUint(encoder, sections.length)
    for (const { start, end } of slices) encoding.writeUint8Array(encoder, bytes.subarray(start, end))
    encoding.writeUint8Array(encoder, bytes.subarray(structsEnd))
  })
}
