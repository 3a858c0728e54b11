/**
 * What every update a document takes from others must pass, against that document: the
 * same checks on a relay, which stores updates without integrating them, and on a replica
 * that takes updates from peers it does not trust.
 *
 * Validation has two halves: the shape of an update alone (update-shape.ts, every update
 * and every part a document is loaded from) and its items against the document's
 * (item-index.ts, built the first time an update has items whose checks need other items).
 * Around them, this module keeps what the document holds, as ids rather than items: the
 * structs held and the deletions known (to drop what is not new, and to tell what waits
 * for a missing dependency), the distinct clients named (a limit), and the bytes of updates
 * waiting for dependencies (a limit). It reads the document's parts (the updates it is
 * made of) only to build the item index, or to read the ids again once it let them go.
 */
import type { DocId } from '../wire/doc-id.js'
import { CloseCode } from '../wire/close-codes.js'
import { LimitError } from '../errors.js'
import { IdRanges } from './id-ranges.js'
import { ItemIndex } from './item-index.js'
import { NO_ID, StructKind, UpdateReader } from './update-reader.js'
import { Run, TooManyClientsError, inspectUpdate, type Section, type UpdateShape } from './update-shape.js'

/** An update validated against a document, ready to {@link DocumentChecks.record} once the document holds it. */
export interface PreparedUpdate {
  /** The update as it is stored and forwarded (normalised), and its description. */
  readonly shape: UpdateShape
  /** What the document's item index found, if it was consulted. */
  readonly lists: Float64Array | null
  /** Whether holding it leaves something new waiting for a dependency (see {@link DocumentChecks.waits}). */
  readonly waits: boolean
}

/** Options of a {@link DocumentChecks}. */
export interface DocumentChecksOptions {
  /** The document, as errors name it. */
  docId: DocId
  /** Distinct client ids the document's structs and deletions may name (1008 beyond). Default: no limit. */
  maxClients?: number
  /** Bytes of updates waiting for missing dependencies beyond which an update that would wait too is refused (1008). Default: no limit. */
  maxWaitingBytes?: number
  /** Called when the checks read again what {@link DocumentChecks.shed} let go (the ids, the item index): the document is busy again. */
  onRebuilt?: () => void
}

/** What a document that waits for nothing has as `awaited`: shared, and never written to (see `await`). */
const NO_AWAITED = new Map<number, number>()

/** Where a run keeps the ids its first item refers to, client then clock: origin, right origin, parent (the rest of a run refers within it). */
const RUN_REFERENCES = [Run.originClient, Run.rightClient, Run.parentClient] as const

/**
 * The checks of one document; see the module comment. Load the parts the document starts
 * from with {@link loadPart}, then {@link prepare} every update from others and
 * {@link record} it once the document holds it; {@link recordOwn} records the document's
 * own changes, which need no checks.
 */
export class DocumentChecks {
  /**
   * The ids of the structs held and of the deletions known (see {@link structs}); null
   * once {@link shed} let them go, to be read again from the document's one part when needed.
   */
  private heldStructs: IdRanges | null = new IdRanges()
  private heldDeletions: IdRanges | null = new IdRanges()
  /** Distinct clients of {@link structs} and {@link deletions}. */
  private clients = 0
  /** Per client, the clock its structs must reach before what waits for them (references, deletions) can be applied. */
  private awaited = NO_AWAITED
  /** Which list each item is in, once an update needed it (see item-index.ts). */
  private index: ItemIndex | null = null
  /** Bytes of updates recorded that waited for missing dependencies since the document last had none. */
  private waiting = 0
  private readonly docId: DocId
  private readonly maxClients: number
  private readonly maxWaitingBytes: number
  private readonly onRebuilt: (() => void) | undefined

  /** `parts`: the updates the document is made of, as it keeps them (read when the item index is built, and the ids read again). */
  constructor (private readonly parts: () => readonly Uint8Array[], options: DocumentChecksOptions) {
    this.docId = options.docId
    this.maxClients = options.maxClients ?? Infinity
    this.maxWaitingBytes = options.maxWaitingBytes ?? Infinity
    this.onRebuilt = options.onRebuilt
  }

  /** The ids of every struct held. */
  private get structs (): IdRanges {
    if (this.heldStructs === null) this.readIds()
    return this.heldStructs!
  }

  /** The ids of every deletion known. */
  private get deletions (): IdRanges {
    if (this.heldDeletions === null) this.readIds()
    return this.heldDeletions!
  }

  /** Reads the ids back from the document's one part (they are exactly its ids: see shed). */
  private readIds (): void {
    const parts = this.parts()
    const ids = parts.length === 0 ? { structs: new IdRanges(), deletions: new IdRanges() } : idsOf(parts[0]!)
    this.heldStructs = ids.structs
    this.heldDeletions = ids.deletions
    this.onRebuilt?.()
  }

  /** Bytes of updates recorded that wait for missing dependencies (ids of some client they need, that the document lacks). */
  get waitingBytes (): number {
    return this.waiting
  }

  /**
   * Records `part`, an update the document is loaded from: checked alone, as an incoming
   * update is, but not against the document. Returns its shape, whose bytes are what the
   * document keeps (normalised). Throws a ProtocolError if it is invalid, a
   * {@link TooManyClientsError} once the document names more than `maxClients` clients.
   */
  loadPart (part: Uint8Array): UpdateShape {
    const shape = inspectUpdate(part, this.maxClients)
    this.add(shape, null, false)
    if (this.clients > this.maxClients) throw new TooManyClientsError(this.maxClients)
    return shape
  }

  /**
   * Validates `update` against this document. Returns null if the document already has
   * everything in it; throws a ProtocolError if it is malformed or does not fit the
   * document, a LimitError (1008) if the document would name too many clients.
   */
  prepare (update: Uint8Array): PreparedUpdate | null {
    let shape: UpdateShape
    try {
      shape = inspectUpdate(update, this.maxClients)
    } catch (error) {
      throw error instanceof TooManyClientsError ? this.tooManyClients() : error
    }
    if (!this.isNew(shape)) return null
    if (this.clients + this.newClients(shape) > this.maxClients) throw this.tooManyClients()
    const waits = this.waits(shape)
    if (this.index === null && !ItemIndex.needed(shape) && !this.continuesHeld(shape)) return { shape, lists: null, waits }
    if (this.index === null) {
      this.index = ItemIndex.of(this.inspectedParts())
      this.onRebuilt?.()
    }
    return { shape, lists: this.index.check(shape), waits }
  }

  /** Records an update {@link prepare} returned, once the document holds it. */
  record ({ shape, lists, waits }: PreparedUpdate): void {
    this.add(shape, lists, waits)
  }

  /**
   * Records a change the document made itself (a replica's local change, as Yjs encoded
   * it), which needs no checks: it is already part of the document. Returns its shape.
   */
  recordOwn (update: Uint8Array): UpdateShape {
    const shape = inspectUpdate(update)
    this.add(shape, null, false)
    return shape
  }

  /**
   * Throws a LimitError (1008) if more than `maxWaitingBytes` bytes of updates wait for
   * missing dependencies and the update would wait too (`waits`, as {@link prepare} found):
   * the update that fills the gap, and others' work, still get in.
   */
  checkWaiting (waits: boolean): void {
    if (waits && this.waiting > this.maxWaitingBytes) {
      throw new LimitError(CloseCode.policyViolation, `more than ${this.maxWaitingBytes} bytes of updates wait for missing dependencies`)
    }
  }

  /** Whether `shape` holds a struct or a deletion this document lacks. */
  isNew ({ sections, deletions }: UpdateShape): boolean {
    for (const { client, ranges } of sections) {
      for (let i = 0; i < ranges.length; i += 2) {
        if (!this.structs.covers(client, ranges[i]!, ranges[i + 1]! - ranges[i]!)) return true
      }
    }
    for (const [client, ranges] of deletions) {
      for (let i = 0; i < ranges.length; i += 2) {
        if (!this.deletions.covers(client, ranges[i]!, ranges[i + 1]! - ranges[i]!)) return true
      }
    }
    return false
  }

  /**
   * Whether recording `shape` would leave something new of it waiting, as Yjs clients keep it
   * pending: structs after a gap in their client's clocks, items referring to ids of other
   * clients the document lacks, deletions of ids it lacks. What the document holds already
   * does not count again: peers re-send what waits along with what is new (Yjs includes its
   * pending structs in every state it encodes), and would otherwise be refused as they sync.
   */
  waits ({ sections, runs, deletions }: UpdateShape): boolean {
    for (const { client, ranges } of sections) {
      let end = this.structs.contiguousEnd(client)
      for (let i = 0; i < ranges.length; i += 2) {
        if (ranges[i]! > end && !this.structs.covers(client, ranges[i]!, ranges[i + 1]! - ranges[i]!)) return true
        end = Math.max(end, ranges[i + 1]!)
      }
    }
    for (let at = 0; at < runs.length; at += Run.size) {
      const client = runs[at + Run.client]!
      if (this.structs.covers(client, runs[at + Run.start]!, 1)) continue
      for (let r = 0; r < RUN_REFERENCES.length; r++) {
        const field = RUN_REFERENCES[r]!
        const other = runs[at + field]!
        if (other !== NO_ID && other !== client && this.endAfter(sections, other) <= runs[at + field + 1]!) return true
      }
    }
    for (const [client, ranges] of deletions) {
      const end = this.endAfter(sections, client)
      for (let i = 0; i < ranges.length; i += 2) {
        if (ranges[i + 1]! > end && !this.deletions.covers(client, ranges[i]!, ranges[i + 1]! - ranges[i]!)) return true
      }
    }
    return false
  }

  /** The document's state vector: per client, the clock below which it holds every struct. */
  stateVector (): Map<number, number> {
    return this.structs.stateVector()
  }

  /** Throws unless `update` (the document's parts merged) holds exactly the structs and deletions recorded. */
  verify (update: Uint8Array): void {
    this.compare(update, 'exact')
  }

  /**
   * Throws unless `snapshot` (the document's parts integrated and garbage-collected) holds
   * exactly the structs recorded and at least the deletions; then records the deletions it
   * adds: integration deletes more than updates say (the items of a deleted type, a map
   * entry overwritten concurrently).
   */
  verifySnapshot (snapshot: Uint8Array): void {
    this.compare(snapshot, 'at least').forEachRange((client, start, end) => this.deletions.add(client, start, end - start))
  }

  /**
   * Lets go of what is read again from the document's parts when needed: the item index
   * and, if the document is one part and nothing waits for a dependency, the ids. The one
   * part must hold exactly the ids recorded (a merge is checked to by {@link verify}, a
   * snapshot once {@link verifySnapshot} recorded its deletions).
   */
  shed (): void {
    this.index = null
    if (this.heldStructs === null || this.parts().length > 1 || this.awaits) return
    this.heldStructs = null
    this.heldDeletions = null
  }

  /** Whether something recorded waits for a missing dependency: structs after a gap in their client's clocks, or what `awaited` holds. */
  private get awaits (): boolean {
    return this.awaited.size > 0 || this.structs.hasGaps()
  }

  /** Throws unless `update` holds exactly the structs recorded, and the deletions (exactly, or at least them). Returns its deletions. */
  private compare (update: Uint8Array, deletions: 'exact' | 'at least'): IdRanges {
    const ids = idsOf(update)
    if (!ids.structs.equals(this.structs)) throw new Error('the result holds other structs than the stored updates')
    if (deletions === 'exact' ? !ids.deletions.equals(this.deletions) : !ids.deletions.includes(this.deletions)) {
      throw new Error('the result lacks deletions of the stored updates')
    }
    return ids.deletions
  }

  /** Records the ids of `shape`, adds it to the item index if there is one (with `lists` if it was checked), and counts its bytes if it `waits`. */
  private add (shape: UpdateShape, lists: Float64Array | null, waits: boolean): void {
    this.recordIds(shape)
    this.index?.add(shape, lists)
    if (!this.awaits) this.waiting = 0
    else if (waits) this.waiting += shape.bytes.length
  }

  /** Whether `shape` re-sends ids the document holds and continues them (Yjs then integrates the rest after the held ids). */
  private continuesHeld ({ sections }: UpdateShape): boolean {
    for (const { client, ranges } of sections) {
      for (let i = 0; i < ranges.length; i += 2) {
        if (this.structs.covers(client, ranges[i]!, 1) && !this.structs.covers(client, ranges[i]!, ranges[i + 1]! - ranges[i]!)) return true
      }
    }
    return false
  }

  private * inspectedParts (): Iterable<UpdateShape> {
    for (const part of this.parts()) yield inspectUpdate(part)
  }

  private tooManyClients (): LimitError {
    return new LimitError(CloseCode.policyViolation, `document ${this.docId} would have more than ${this.maxClients} clients`)
  }

  /** Clients `shape` names that this document does not. */
  private newClients ({ sections, deletions }: UpdateShape): number {
    let count = 0
    for (const { client, ranges } of sections) {
      if (ranges.length > 0 && !this.knows(client)) count++
    }
    for (const client of deletions.keys()) {
      if (!this.knows(client) && !(findSection(sections, client)?.ranges.length)) count++
    }
    return count
  }

  private knows (client: number): boolean {
    return this.structs.has(client) || this.deletions.has(client)
  }

  /** The contiguous end of `client`'s structs once `sections` are recorded. */
  private endAfter (sections: Section[], client: number): number {
    let end = this.structs.contiguousEnd(client)
    const ranges = findSection(sections, client)?.ranges ?? []
    for (let i = 0; i < ranges.length && ranges[i]! <= end; i += 2) end = Math.max(end, ranges[i + 1]!)
    return end
  }

  private recordIds (shape: UpdateShape): void {
    for (const { client, ranges } of shape.sections) {
      if (ranges.length > 0 && !this.knows(client)) this.clients++
      addRanges(this.structs, client, ranges)
    }
    for (const [client, ranges] of shape.deletions) {
      if (!this.knows(client)) this.clients++
      addRanges(this.deletions, client, ranges)
    }
    // What this update waits for, and what it brings that others waited for.
    for (const [client, clock] of shape.references) this.await(client, clock + 1)
    for (const [client, ranges] of shape.deletions) {
      for (let i = 1; i < ranges.length; i += 2) this.await(client, ranges[i]!)
    }
    for (const { client } of shape.sections) {
      const needed = this.awaited.get(client)
      if (needed !== undefined && this.structs.contiguousEnd(client) >= needed) this.awaited.delete(client)
    }
    if (this.awaited.size === 0) this.awaited = NO_AWAITED
  }

  /** Notes that something needs `client`'s structs up to `clock`, unless the document has them. */
  private await (client: number, clock: number): void {
    if (this.structs.contiguousEnd(client) >= clock) return
    if ((this.awaited.get(client) ?? 0) >= clock) return
    if (this.awaited === NO_AWAITED) this.awaited = new Map()
    this.awaited.set(client, clock)
  }
}

/**
 * The ids of the structs and deletions of `update` (a merge or snapshot made by Yjs), read
 * without the checks of incoming updates: only what is needed to compare it with what it replaces.
 */
function idsOf (update: Uint8Array): { structs: IdRanges, deletions: IdRanges } {
  const structs = new IdRanges()
  const deletions = new IdRanges()
  try {
    const reader = UpdateReader.shared(update)
    while (reader.nextSection()) {
      while (reader.nextStruct()) {
        if (reader.kind !== StructKind.skip) structs.add(reader.client, reader.clock, reader.length)
      }
    }
    reader.readDeleteSet((client, clock, length) => deletions.add(client, clock, length))
  } finally {
    UpdateReader.releaseShared()
  }
  return { structs, deletions }
}

function addRanges (set: IdRanges, client: number, ranges: number[]): void {
  for (let i = 0; i < ranges.length; i += 2) set.add(client, ranges[i]!, ranges[i + 1]! - ranges[i]!)
}

/** The section of `client` in `sections` (descending client order), if any. */
function findSection (sections: Section[], client: number): Section | undefined {
  let low = 0
  let high = sections.length - 1
  while (low <= high) {
    const mid = (low + high) >> 1
    const found = sections[mid]!.client
    if (found === client) return sections[mid]
    if (found > client) low = mid + 1
    else high = mid - 1
  }
  return undefined
}
