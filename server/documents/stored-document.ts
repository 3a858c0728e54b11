/**
 * A relay's copy of one document, kept as the updates it stored rather than as a Y.Doc.
 * The relay never integrates updates: it validates them, drops those it already has, and
 * stores and forwards the rest. A peer is synced by diffing the merged stored updates
 * against its state vector (a fresh peer gets them as they are); compaction builds a
 * Y.Doc only for as long as it takes to encode a garbage-collected snapshot. Holding
 * bytes instead of a Y.Doc keeps an open document small, makes a cold load little more
 * than a read, and takes integration off the write path.
 *
 * Validation has two halves: the shape of an update alone (update-shape.ts, every update
 * and every stored part at load) and its items against the document's (item-index.ts,
 * built the first time an update has items whose checks need other items). Whatever
 * replaces stored parts (a merge, a compacted snapshot) is checked to hold exactly the
 * structs it replaces, and their deletions, before it does.
 */
import type { Logger } from 'pino'
import * as Y from 'yjs'
import type { DocId } from '../../shared/wire/doc-id.js'
import { DocLog, type DocLogOptions, type Snapshotter } from '../../shared/storage/doc-log.js'
import type { DocStore } from '../../shared/storage/store.js'
import { CloseCode } from '../../shared/wire/close-codes.js'
import { decodeStateVector } from '../../shared/validation/update-validation.js'
import { ItemIndex } from '../../shared/validation/item-index.js'
import { Run, TooManyClientsError, inspectUpdate, type Section, type UpdateShape } from '../../shared/validation/update-shape.js'
import { NO_ID } from '../../shared/validation/update-reader.js'
import { StructKind, UpdateReader } from '../../shared/validation/update-reader.js'
import { LimitError } from '../../shared/errors.js'
import { IdRanges } from '../../shared/validation/id-ranges.js'
import { DiffBudget, SyncAnswers } from './sync-answers.js'
import { DocDeletedError, DocLoadError } from '../../shared/errors.js'
import { decodeDocMeta, encodeDocMeta, STAMP_EVERY_MS } from './doc-meta.js'
import { forget, keepBusy, type Settling } from './quiet.js'

/** Updates merged in one call at most: Yjs merges many small updates in superlinear time (32 at a time is 3x faster than 256). */
const MERGE_GROUP = 32

/** Merges `updates` in groups of at most {@link MERGE_GROUP}, one merged update per group. */
export function mergeInGroups (updates: Uint8Array[]): Uint8Array[] {
  const groups: Uint8Array[] = []
  for (let i = 0; i < updates.length; i += MERGE_GROUP) {
    const group = updates.slice(i, i + MERGE_GROUP)
    groups.push(group.length === 1 ? group[0]! : Y.mergeUpdates(group))
  }
  return groups
}
const EMPTY_UPDATE = new Uint8Array([0, 0])

/**
 * Stored bytes up to which a quiet document merges its parts and drops its item index:
 * redoing either then takes well under a millisecond, while each part costs a few hundred
 * bytes of objects (more than a small update's bytes) and an index a few hundred more.
 */
const SETTLE_MAX_BYTES = 64 * 1024

/** What a document that waits for nothing has as `awaited`: shared, and never written to (see `await`). */
const NO_AWAITED = new Map<number, number>()

/** Options of {@link StoredDocument.load}. */
export interface StoredDocumentOptions extends DocLogOptions {
  /** Distinct client ids the document's structs and deletions may name (1008 beyond). Default: no limit. */
  maxClients?: number
  /** Where failed compactions and merges are reported. */
  log?: Logger
  /** The relay's diffing time, shared by its documents. Default: one for this document alone. */
  diffBudget?: DiffBudget
}

/** An update validated against a document, ready to {@link StoredDocument.append}. */
export interface PreparedUpdate {
  /** The update as it is stored and forwarded (normalised), and its description. */
  readonly shape: UpdateShape
  /** What the document's item index found, if it was consulted. */
  readonly lists: Float64Array | null
  /** Whether storing it leaves something new waiting for a dependency (see {@link StoredDocument.waits}). */
  readonly waits: boolean
}

/** Where a run keeps the ids its first item refers to, client then clock: origin, right origin, parent (the rest of a run refers within it). */
const RUN_REFERENCES = [Run.originClient, Run.rightClient, Run.parentClient] as const

/** See the module comment; create one with {@link StoredDocument.load}. */
export class StoredDocument implements Settling, Snapshotter {
  /** Together, everything stored: the snapshot and the log as loaded (normalised), then every update appended. */
  private parts: Uint8Array[] = []
  /**
   * The ids of the structs stored and of the deletions known (see {@link structs}); null
   * once a settled document let them go, to be read again from its one part when needed.
   */
  private heldStructs: IdRanges | null = new IdRanges()
  private heldDeletions: IdRanges | null = new IdRanges()
  /** Distinct clients of {@link structs} and {@link deletions}. */
  private clients = 0
  /** Per client, the clock its structs must reach before what waits for them (references, deletions) can be applied. */
  private awaited = NO_AWAITED
  /** Which list each item is in, once an update needed it (see item-index.ts). */
  private index: ItemIndex | null = null
  private readonly log: DocLog
  private readonly maxClients: number
  private readonly logger: Logger | undefined
  /** Bytes of stored updates that waited for missing dependencies since the document last had none. */
  private waiting = 0
  /** What a peer holding every struct up to the state vector lacks (the delete set, and structs stored after a gap), until the next write. */
  private upToDateAnswer: Uint8Array | null = null
  private encodedStateVector: Uint8Array | null = null
  /** Answers to peers that lack structs, until the next write (see sync-answers.ts). */
  private readonly answers: SyncAnswers
  /** Whether an update stored since the last compaction deleted something: only then is there garbage to collect. */
  private deletedSinceCompaction = false

  /** When a change was last stored (as far as the stored metadata says), and when that was last written down. */
  private updatedAt: number
  private stamped: number

  private constructor (private readonly store: DocStore, private readonly docId: DocId, stored: Awaited<ReturnType<DocStore['load']>>, options: StoredDocumentOptions) {
    this.updatedAt = this.stamped = decodeDocMeta(stored?.meta ?? null)?.updatedAt ?? 0
    this.log = new DocLog(store, docId, stored, this, options)
    this.maxClients = options.maxClients ?? Infinity
    this.logger = options.log
    this.answers = new SyncAnswers(options.diffBudget ?? new DiffBudget())
  }

  /**
   * Loads `docId`, validating every stored part as an incoming update is validated. Rejects
   * with {@link DocLoadError}, storing nothing, if the stored data is invalid or names more
   * clients than allowed.
   */
  static async load (store: DocStore, docId: DocId, options: StoredDocumentOptions = {}): Promise<StoredDocument> {
    const stored = await store.load(docId)
    if (decodeDocMeta(stored?.meta ?? null)?.deletedAt !== undefined) throw new DocDeletedError(docId)
    const doc = new StoredDocument(store, docId, stored, options)
    const parts = stored === null ? [] : stored.snapshot === null ? stored.updates : [stored.snapshot, ...stored.updates]
    try {
      for (const part of parts) {
        const shape = inspectUpdate(part, doc.maxClients)
        doc.record(shape)
        doc.parts.push(shape.bytes)
        if (doc.clients > doc.maxClients) throw new TooManyClientsError(doc.maxClients)
      }
    } catch (error) {
      const reason = error instanceof TooManyClientsError ? `names more than ${doc.maxClients} clients` : `is invalid: ${(error as Error).message}`
      throw new DocLoadError(`stored data of document ${docId} ${reason}`)
    }
    await doc.log.compactIfDue()
    return doc
  }

  /** The ids of every struct stored. */
  private get structs (): IdRanges {
    if (this.heldStructs === null) this.readIds()
    return this.heldStructs!
  }

  /** The ids of every deletion known. */
  private get deletions (): IdRanges {
    if (this.heldDeletions === null) this.readIds()
    return this.heldDeletions!
  }

  /** Reads the ids back from the one part a settled document keeps (they are exactly its ids: see settle). */
  private readIds (): void {
    const ids = this.parts.length === 0 ? { structs: new IdRanges(), deletions: new IdRanges() } : idsOf(this.parts[0]!)
    this.heldStructs = ids.structs
    this.heldDeletions = ids.deletions
    keepBusy(this)
  }

  /** Bytes currently in the log and in the snapshot. */
  get sizes (): { logBytes: number, snapshotBytes: number } {
    return this.log.sizes
  }

  /** Bytes of stored updates that wait for missing dependencies (ids of some client they need, that the document lacks). */
  get waitingBytes (): number {
    return this.waiting
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
      keepBusy(this)
    }
    return { shape, lists: this.index.check(shape), waits }
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
   * Whether storing `shape` would leave something new of it waiting, as Yjs clients keep it
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

  /** Stores an update {@link prepare} returned. Resolves once it is durable. */
  append ({ shape, lists, waits }: PreparedUpdate): Promise<void> {
    this.record(shape)
    this.index?.add(shape, lists)
    if (!this.structs.hasGaps() && this.awaited.size === 0) this.waiting = 0
    else if (waits) this.waiting += shape.bytes.length
    this.parts.push(shape.bytes)
    this.upToDateAnswer = null
    this.encodedStateVector = null
    this.answers.clear()
    const written = this.log.write(shape.bytes)
    this.stamp()
    keepBusy(this)
    return written
  }

  /**
   * Gives up what is kept only to be fast while busy (see quiet.ts): cached encodings and
   * answers and, for a small document, its parts merged into one, the item index and,
   * unless something waits for a dependency, the ids: all of it is read again from the
   * part when an update or a peer needs it.
   */
  settle (): void {
    this.upToDateAnswer = null
    this.encodedStateVector = null
    this.answers.clear()
    const { logBytes, snapshotBytes } = this.log.sizes
    if (logBytes + snapshotBytes > SETTLE_MAX_BYTES) return
    this.index = null
    try {
      this.merged()
    } catch {
      return // reported by merged(); the parts stay as they are
    }
    // A merge holds exactly the stored ids (merged() checks), as does a snapshot once compaction learnt its deletions.
    if (this.parts.length > 1 || this.awaited.size > 0 || this.structs.hasGaps()) return
    this.heldStructs = null
    this.heldDeletions = null
  }

  /** Milliseconds since the epoch of the last stored change, or 0 if unknown (stored before relays kept it). */
  get lastChange (): number {
    return this.updatedAt
  }

  /** Records the time of a change in the stored metadata, at most every {@link STAMP_EVERY_MS} (it joins the change's commit). */
  private stamp (): void {
    this.updatedAt = Date.now()
    if (this.updatedAt - this.stamped < STAMP_EVERY_MS) return
    this.stamped = this.updatedAt
    const meta = encodeDocMeta({ updatedAt: this.updatedAt })
    // It fails only with its commit, whose append reports it.
    this.store.updateMeta(this.docId, () => meta).catch(() => {})
  }

  /** The document leaves memory: it is not settled any more. */
  close (): void {
    forget(this)
  }

  /** Resolves once everything appended so far is durable; rejects once any write failed. */
  settled (): Promise<void> {
    return this.log.settled()
  }

  /** The document's state vector: per client, the clock below which it holds every struct (encoded once per write). */
  stateVector (): Uint8Array {
    if (this.encodedStateVector === null) {
      this.encodedStateVector = Y.encodeStateVector(this.structs.stateVector())
      keepBusy(this)
    }
    return this.encodedStateVector
  }

  /** What a peer with `stateVector` lacks. Throws a ProtocolError if the state vector is malformed. */
  missingFor (stateVector: Uint8Array): Uint8Array {
    const peer = decodeStateVector(stateVector)
    if (peer.size === 0) return this.merged()
    return this.answers.answer(stateVector, () => {
      keepBusy(this) // the answer is kept
      // A peer with every struct up to our state vector (most reconnecting clients) lacks at
      // most deletions and waiting structs: one answer serves them all until the next write,
      // instead of a diff of the whole document for each.
      for (const [client, clock] of this.structs.stateVector()) {
        if ((peer.get(client) ?? 0) < clock) return Y.diffUpdate(this.merged(), stateVector)
      }
      this.upToDateAnswer ??= Y.diffUpdate(this.merged(), this.stateVector())
      return this.upToDateAnswer
    }, () => this.merged())
  }

  /**
   * Everything stored, as one update (merged once, then kept). A merge that does not hold
   * exactly what the parts hold is reported and replaced by the state of a Y.Doc.
   */
  private merged (): Uint8Array {
    if (this.parts.length === 0) return EMPTY_UPDATE
    if (this.parts.length === 1) return this.parts[0]!
    let parts = this.parts
    while (parts.length > 1) parts = mergeInGroups(parts)
    let merged = parts[0]!
    try {
      this.verify(merged, 'exact')
    } catch (error) {
      this.logger?.error({ err: error, doc: this.docId }, 'merging the stored updates lost data; encoding them from a Y.Doc instead')
      merged = this.encoded(false)
      this.verify(merged, 'exact')
    }
    this.parts = [merged]
    return merged
  }

  /**
   * A snapshot of everything stored (updates still waiting for dependencies included). If
   * something was deleted since the last compaction, it is encoded from a Y.Doc, which
   * garbage-collects deleted content; otherwise merging the parts gives the same result
   * several times faster (append-only documents: logs, chats, counters). A snapshot that
   * fails its check is not used: the log keeps everything (DocLog retries later). Called
   * by the document's DocLog when it compacts: the parts become the snapshot.
   */
  snapshot (): Uint8Array {
    try {
      let snapshot: Uint8Array
      if (this.deletedSinceCompaction) {
        snapshot = this.encoded(true)
        // Integration deletes more than updates say (the items of a deleted type, a map entry overwritten concurrently).
        this.verify(snapshot, 'at least').forEachRange((client, start, end) => this.deletions.add(client, start, end - start))
      } else {
        snapshot = this.merged()
      }
      this.parts = [snapshot]
      this.deletedSinceCompaction = false
      return snapshot
    } catch (error) {
      this.logger?.error({ err: error, doc: this.docId }, 'compaction failed; the log keeps every update and compaction is retried once it has grown by half')
      throw error
    }
  }

  /** The state of a Y.Doc holding every part, garbage-collected if `gc`. */
  private encoded (gc: boolean): Uint8Array {
    const doc = new Y.Doc({ gc })
    try {
      // Applying the parts in one transaction is several times faster than merging them first.
      Y.transact(doc, () => {
        for (const part of this.parts) Y.applyUpdate(doc, part)
      })
      return Y.encodeStateAsUpdate(doc)
    } finally {
      doc.destroy()
    }
  }

  /**
   * Throws unless `update` holds exactly the structs stored, and the deletions stored
   * (exactly, or at least them). Returns its deletions.
   */
  private verify (update: Uint8Array, deletions: 'exact' | 'at least'): IdRanges {
    const ids = idsOf(update)
    if (!ids.structs.equals(this.structs)) throw new Error('the result holds other structs than the stored updates')
    if (deletions === 'exact' ? !ids.deletions.equals(this.deletions) : !ids.deletions.includes(this.deletions)) {
      throw new Error('the result lacks deletions of the stored updates')
    }
    return ids.deletions
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
    for (const part of this.parts) yield inspectUpdate(part)
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

  /** The contiguous end of `client`'s structs once `sections` are stored. */
  private endAfter (sections: Section[], client: number): number {
    let end = this.structs.contiguousEnd(client)
    const ranges = findSection(sections, client)?.ranges ?? []
    for (let i = 0; i < ranges.length && ranges[i]! <= end; i += 2) end = Math.max(end, ranges[i + 1]!)
    return end
  }

  private record (shape: UpdateShape): void {
    for (const { client, ranges } of shape.sections) {
      if (ranges.length > 0 && !this.knows(client)) this.clients++
      addRanges(this.structs, client, ranges)
    }
    this.recordDeletions(shape)
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

  private recordDeletions ({ deletions }: UpdateShape): void {
    if (deletions.size > 0) this.deletedSinceCompaction = true
    for (const [client, ranges] of deletions) {
      if (!this.knows(client)) this.clients++
      addRanges(this.deletions, client, ranges)
    }
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
