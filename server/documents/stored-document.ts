/**
 * A relay's copy of one document, kept as the updates it stored rather than as a Y.Doc.
 * The relay never integrates updates: it validates them, drops those it already has, and
 * stores and forwards the rest. A peer is synced by diffing the merged stored updates
 * against its state vector (a fresh peer gets them as they are); compaction builds a
 * Y.Doc only for as long as it takes to encode a garbage-collected snapshot. Holding
 * bytes instead of a Y.Doc keeps an open document small, makes a cold load little more
 * than a read, and takes integration off the write path.
 */
import * as Y from 'yjs'
import type { DocId } from '../../shared/wire/doc-id.js'
import { DocLog, type DocLogOptions } from '../../shared/storage/doc-log.js'
import type { DocStore } from '../../shared/storage/store.js'
import { decodeStateVector, decodeValidUpdate, type DecodedUpdate } from '../../shared/validation/update-validation.js'
import { IdRanges } from './id-ranges.js'
import { DocLoadError } from '../../shared/errors.js'

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

/** See the module comment; create one with {@link StoredDocument.load}. */
export class StoredDocument {
  /** Together, everything stored: the snapshot and the log as loaded, then every update appended. */
  private parts: Uint8Array[]
  private readonly structs = new IdRanges()
  private readonly deletions = new IdRanges()
  private readonly log: DocLog
  /** The snapshot as loaded, until its deletions are needed: only its state vector is read at load. */
  private unscanned: Uint8Array | null = null
  /** Bytes of stored updates that left a gap in some client's clocks since the document last had none. */
  private waitingBytes = 0
  /** What a peer holding every struct up to the state vector lacks (the delete set, and structs stored after a gap), until the next write. */
  private upToDateAnswer: Uint8Array | null = null
  /** Whether an update stored since the last compaction deleted something: only then is there garbage to collect. */
  private deletedSinceCompaction = false

  private constructor (store: DocStore, docId: DocId, stored: Awaited<ReturnType<DocStore['load']>>, options: DocLogOptions) {
    this.parts = stored === null ? [] : stored.snapshot === null ? [...stored.updates] : [stored.snapshot, ...stored.updates]
    this.log = new DocLog(store, docId, stored, () => this.compacted(), options)
  }

  /** Loads `docId`. Rejects with {@link DocLoadError}, storing nothing, if the stored data does not decode. */
  static async load (store: DocStore, docId: DocId, options: DocLogOptions = {}): Promise<StoredDocument> {
    const stored = await store.load(docId)
    const doc = new StoredDocument(store, docId, stored, options)
    try {
      // A full decode of the snapshot costs as much as a cold load: read only its state
      // vector now, and its deletions once an update brings deletions (see isNew).
      if (stored?.snapshot != null) {
        for (const [client, clock] of Y.decodeStateVector(Y.encodeStateVectorFromUpdate(stored.snapshot))) doc.structs.add(client, 0, clock)
        doc.unscanned = stored.snapshot
      }
      for (const update of stored?.updates ?? []) doc.record(decodeValidUpdate(update))
    } catch (error) {
      throw new DocLoadError(`stored data of document ${docId} does not decode: ${(error as Error).message}`)
    }
    await doc.log.compactIfDue()
    return doc
  }

  /** Bytes currently in the log and in the snapshot. */
  get sizes (): { logBytes: number, snapshotBytes: number } {
    return this.log.sizes
  }

  /** Bytes of stored updates that wait for missing dependencies (a gap in their client's clocks). */
  get pendingBytes (): number {
    return this.waitingBytes
  }

  /** Whether `update` holds a struct or a deletion this document lacks. */
  isNew (decoded: DecodedUpdate): boolean {
    for (const struct of decoded.structs) {
      if (!(struct instanceof Y.Skip) && !this.structs.covers(struct.id.client, struct.id.clock, struct.length)) return true
    }
    if (!this.coversDeletions(decoded)) {
      if (this.unscanned === null) return true
      // Clients send their whole delete set with every sync: learn the snapshot's once.
      this.record(Y.decodeUpdate(this.unscanned))
      this.unscanned = null
      return !this.coversDeletions(decoded)
    }
    return false
  }

  private coversDeletions ({ ds }: DecodedUpdate): boolean {
    for (const [client, deleted] of ds.clients) {
      for (const { clock, len } of deleted) {
        if (!this.deletions.covers(client, clock, len)) return false
      }
    }
    return true
  }

  /**
   * Whether storing `update` would leave some of its structs after a gap in their client's
   * clocks, i.e. waiting for structs neither it nor this document has.
   */
  waits ({ structs }: DecodedUpdate): boolean {
    // Yjs writes each client's structs together, in clock order.
    let client = -1
    let end = 0
    for (const struct of structs) {
      if (struct.id.client !== client) {
        client = struct.id.client
        end = this.structs.contiguousEnd(client)
      }
      // After a skip, the client's later structs wait whatever the document holds.
      if (struct instanceof Y.Skip) end = -1
      else if (end < 0 || struct.id.clock > end) return true
      else end = Math.max(end, struct.id.clock + struct.length)
    }
    return false
  }

  /** Stores `update` (`decoded` is its decoding). Resolves once it is durable. */
  append (update: Uint8Array, decoded: DecodedUpdate): Promise<void> {
    const waits = this.waits(decoded)
    this.record(decoded)
    if (!this.structs.hasGaps()) this.waitingBytes = 0
    else if (waits) this.waitingBytes += update.length
    this.parts.push(update)
    this.upToDateAnswer = null
    return this.log.write(update)
  }

  /** Resolves once everything appended so far is durable; rejects once any write failed. */
  settled (): Promise<void> {
    return this.log.settled()
  }

  /** The document's state vector: per client, the clock below which it holds every struct. */
  stateVector (): Uint8Array {
    return Y.encodeStateVector(this.structs.stateVector())
  }

  /** What a peer with `stateVector` lacks. Throws a ProtocolError if the state vector is malformed. */
  missingFor (stateVector: Uint8Array): Uint8Array {
    const peer = decodeStateVector(stateVector)
    if (peer.size === 0) return this.merged()
    // A peer with every struct up to our state vector (most reconnecting clients) lacks at
    // most deletions and waiting structs: one answer serves them all until the next write,
    // instead of a diff of the whole document for each.
    for (const [client, clock] of this.structs.stateVector()) {
      if ((peer.get(client) ?? 0) < clock) return Y.diffUpdate(this.merged(), stateVector)
    }
    this.upToDateAnswer ??= Y.diffUpdate(this.merged(), this.stateVector())
    return this.upToDateAnswer
  }

  /** Everything stored, as one update (merged once, then kept). */
  private merged (): Uint8Array {
    if (this.parts.length === 0) return EMPTY_UPDATE
    while (this.parts.length > 1) this.parts = mergeInGroups(this.parts)
    return this.parts[0]!
  }

  /**
   * A snapshot of everything stored (updates still waiting for dependencies included). If
   * something was deleted since the last compaction, it is encoded from a Y.Doc, which
   * garbage-collects deleted content; otherwise merging the parts gives the same result
   * several times faster (append-only documents: logs, chats, counters).
   */
  private compacted (): Uint8Array {
    const snapshot = this.deletedSinceCompaction ? this.collected() : this.merged()
    this.parts = [snapshot]
    this.deletedSinceCompaction = false
    return snapshot
  }

  private collected (): Uint8Array {
    const doc = new Y.Doc({ gc: true })
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

  private record ({ structs, ds }: DecodedUpdate): void {
    if (ds.clients.size > 0) this.deletedSinceCompaction = true
    for (const struct of structs) {
      if (!(struct instanceof Y.Skip)) this.structs.add(struct.id.client, struct.id.clock, struct.length)
    }
    for (const [client, deleted] of ds.clients) {
      for (const { clock, len } of deleted) this.deletions.add(client, clock, len)
    }
  }
}
