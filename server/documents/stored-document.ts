/**
 * A relay's copy of one document, kept as the updates it stored rather than as a Y.Doc.
 * The relay never integrates updates: it validates them, drops those it already has, and
 * stores and forwards the rest. A peer is synced by diffing the merged stored updates
 * against its state vector (a fresh peer gets them as they are); compaction builds a
 * Y.Doc only for as long as it takes to encode a garbage-collected snapshot. Holding
 * bytes instead of a Y.Doc keeps an open document small, makes a cold load little more
 * than a read, and takes integration off the write path.
 *
 * Updates are validated against the document by its checks (document-checks.ts, shared
 * with replicas): every stored part at load, every update before it is appended. Whatever
 * replaces stored parts (a merge, a compacted snapshot) is checked to hold exactly the
 * structs it replaces, and their deletions, before it does.
 */
import type { Logger } from 'pino'
import * as Y from 'yjs'
import type { DocId } from '../../shared/wire/doc-id.js'
import { DocLog, type DocLogOptions, type Snapshotter } from '../../shared/storage/doc-log.js'
import type { DocStore } from '../../shared/storage/store.js'
import { decodeStateVector } from '../../shared/wire/state-vector.js'
import { TooManyClientsError } from '../../shared/validation/update-shape.js'
import { DocumentChecks, type PreparedUpdate } from '../../shared/validation/document-checks.js'
import { DiffBudget, SyncAnswers } from './sync-answers.js'
import { DocDeletedError, DocLoadError } from '../../shared/errors.js'
import { decodeDocMeta, encodeDocMeta, STAMP_EVERY_MS } from './doc-meta.js'
import { forget, keepBusy, type Shedding } from './quiet.js'

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
const SHED_MAX_BYTES = 64 * 1024

/** Options of {@link StoredDocument.load}. */
export interface StoredDocumentOptions extends DocLogOptions {
  /** Distinct client ids the document's structs and deletions may name (1008 beyond). Default: no limit. */
  maxClients?: number
  /** Bytes of updates waiting for missing dependencies beyond which one that would wait too is refused (1008; see {@link DocumentChecks.checkWaiting}). Default: no limit. */
  maxWaitingBytes?: number
  /** Where failed compactions and merges are reported. */
  logger?: Logger
  /** The relay's diffing time, shared by its documents. Default: one for this document alone. */
  diffBudget?: DiffBudget
}

/** See the module comment; create one with {@link StoredDocument.load}. */
export class StoredDocument implements Shedding, Snapshotter {
  /** Together, everything stored: the snapshot and the log as loaded (normalised), then every update appended. */
  private parts: Uint8Array[] = []
  /**
   * What every update must pass: {@link DocumentChecks.prepare} it there, then
   * {@link append} it (which records it in the checks).
   */
  readonly checks: DocumentChecks
  private readonly log: DocLog
  private readonly logger: Logger | undefined
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
    this.checks = new DocumentChecks(() => this.parts, { docId, maxClients: options.maxClients, maxWaitingBytes: options.maxWaitingBytes, onRebuilt: () => keepBusy(this) })
    this.logger = options.logger
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
        const shape = doc.checks.loadPart(part)
        if (shape.deletions.size > 0) doc.deletedSinceCompaction = true
        doc.parts.push(shape.bytes)
      }
    } catch (error) {
      const reason = error instanceof TooManyClientsError ? `names more than ${error.limit} clients` : `is invalid: ${(error as Error).message}`
      throw new DocLoadError(`stored data of document ${docId} ${reason}`)
    }
    await doc.log.compactIfDue()
    return doc
  }

  /** Bytes currently in the log and in the snapshot. */
  get sizes (): { logBytes: number, snapshotBytes: number } {
    return this.log.sizes
  }

  /** Stores an update {@link checks} prepared, and records it there. Resolves once it is durable. */
  append (prepared: PreparedUpdate): Promise<void> {
    const { shape } = prepared
    this.checks.record(prepared)
    if (shape.deletions.size > 0) this.deletedSinceCompaction = true
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
  shed (): void {
    this.upToDateAnswer = null
    this.encodedStateVector = null
    this.answers.clear()
    const { logBytes, snapshotBytes } = this.log.sizes
    if (logBytes + snapshotBytes > SHED_MAX_BYTES) return
    try {
      this.merged()
    } catch {
      // Reported by merged(); the parts stay as they are, and so do the ids.
    }
    // A merge holds exactly the stored ids (merged() checks), as does a snapshot once compaction learnt its deletions.
    this.checks.shed()
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

  /** The document leaves memory: it is not swept any more. */
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
      this.encodedStateVector = Y.encodeStateVector(this.checks.stateVector())
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
      for (const [client, clock] of this.checks.stateVector()) {
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
      this.checks.verify(merged)
    } catch (error) {
      this.logger?.error({ err: error, doc: this.docId }, 'merging the stored updates lost data; encoding them from a Y.Doc instead')
      merged = this.encoded(false)
      this.checks.verify(merged)
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
        this.checks.verifySnapshot(snapshot)
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
}
