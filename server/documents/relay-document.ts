/**
 * One loaded document on a relay, as a sync host: its stored updates, its presence, and the
 * sessions of its peers (clients of either protocol, other relays). Updates are validated,
 * dropped if the document already has them, stored once and forwarded to every other
 * session; the relay never integrates them into a Y.Doc (see {@link StoredDocument}).
 * Updates that arrive together (the frames of one socket read) are merged and forwarded as
 * one message, encoded once per framing rather than once per session: fewer, larger frames
 * are what lets many readers keep up with a fast writer. Forwarding goes out before the
 * next commit, which would otherwise add an fsync to every round trip between peers.
 */
import type { Logger } from 'pino'
import type { DocId } from '../../shared/wire/doc-id.js'
import type { DocLogOptions } from '../../shared/storage/doc-log.js'
import type { DiffBudget } from './sync-answers.js'
import type { DocStore } from '../../shared/storage/store.js'
import { encodeAwarenessEntries } from '../../shared/wire/awareness.js'
import { admitAwareness } from '../../shared/validation/awareness.js'
import { CloseCode } from '../../shared/wire/close-codes.js'
import { FrameCache } from '../../shared/sync/frames.js'
import { SessionSet } from '../../shared/sync/session-set.js'
import type { DocumentHost, HandOver, SyncSession } from '../../shared/sync/session.js'
import { DEFAULT_LIMITS, type Limits } from '../../shared/listen/limits.js'
import { RelayAwareness } from './relay-awareness.js'
import { StoredDocument, mergeInGroups } from './stored-document.js'
import { DocDeletedError, FencedError, LimitError, StorageError } from '../../shared/errors.js'

/** What a document's replication (in a cluster) needs to hear, and adds to durability. */
export interface DocReplication {
  /** Resolves once enough other relays hold every update forwarded to them so far (write quorum). */
  confirm(): Promise<void>
  /** An update was stored: relays that should have it may need a session. */
  stored(): void
  /** A session's handshake completed or its peer acknowledged updates. */
  progressed(session: SyncSession): void
  /** A session ended. */
  ended(session: SyncSession): void
}

/** What a relay measures of its documents (see server/metrics.ts). */
export interface DocumentObserver {
  /** An update of `bytes` was received for `docId`: from a client, another relay, or the HTTP API. */
  received(source: 'client' | 'relay' | 'http', bytes: number, docId: DocId): void
  /** An update (as stored) became durable, `seconds` after it was received. */
  durable(event: { docId: DocId, update: Uint8Array, source: 'client' | 'relay' | 'http', seconds: number }): void
  /** The write quorum confirmed an update, `seconds` after it was stored here. */
  replicated(seconds: number): void
}

/** Options for loading a {@link RelayDocument}. */
export interface RelayDocumentOptions extends DocLogOptions {
  store: DocStore
  logger: Logger
  /** The relay's diffing time, shared by its documents (see sync-answers.ts). */
  diffBudget?: DiffBudget
  /** Measurements. */
  observer?: DocumentObserver
  /** Document size, client, waiting-update and awareness limits. Default {@link DEFAULT_LIMITS}. */
  limits?: Pick<Limits, 'maxDocumentBytes' | 'maxClientsPerDocument' | 'maxWaitingBytes' | 'maxAwarenessEntries' | 'maxAwarenessStateBytes'>
  /** Called once if an update of `doc` fails to be stored (the registry then reloads or drops it); one function for every document. */
  onStoreFailed?: (doc: RelayDocument, error: unknown) => void
}

/** The state vector of a document that has nothing: what a peer with nothing asks for. */
const EMPTY_STATE_VECTOR = new Uint8Array([0])

const DESTROYED = 1
const STORAGE_FAILED = 2
const DELETED = 4

/** A document held in memory by a relay; see the module comment. */
export class RelayDocument implements DocumentHost {
  private readonly sessions = new SessionSet()
  /** Presence, from the first state a peer sets until none is left (most documents have none). */
  private awareness: RelayAwareness | null = null
  /** Updates stored and not yet forwarded, with the session each came from (null: none). */
  private outgoing: Array<{ update: Uint8Array, origin: SyncSession | null }> | null = null
  private lastActivity = Date.now()
  /** Set by the cluster while the document is loaded; null on a relay that stands alone. */
  replication: DocReplication | null = null
  /** Bits: DESTROYED, STORAGE_FAILED, DELETED (one field, not three: a relay keeps thousands of documents open). */
  private flags = 0

  /** `options` are the registry's, shared by every document (read through, not copied into fields of each). */
  private constructor (readonly docId: DocId, private readonly stored: StoredDocument, private readonly options: RelayDocumentOptions) {}

  /** Loads `docId` from the store. Rejects (storing nothing) if the stored data is unreadable. */
  static async load (docId: DocId, options: RelayDocumentOptions): Promise<RelayDocument> {
    const limits = options.limits ?? DEFAULT_LIMITS
    const stored = await StoredDocument.load(options.store, docId, { ...options, maxClients: limits.maxClientsPerDocument, maxWaitingBytes: limits.maxWaitingBytes })
    return new RelayDocument(docId, stored, options)
  }

  private get limits (): NonNullable<RelayDocumentOptions['limits']> {
    return this.options.limits ?? DEFAULT_LIMITS
  }

  private get observer (): DocumentObserver | null {
    return this.options.observer ?? null
  }

  /** Milliseconds since an update or presence change last arrived. */
  get idleFor (): number {
    return Date.now() - this.lastActivity
  }

  /** The sessions of the document. */
  get peers (): Iterable<SyncSession> {
    return this.sessions
  }

  stateVector (): Uint8Array {
    return this.stored.stateVector()
  }

  missingFor (stateVector: Uint8Array): Uint8Array {
    return this.stored.missingFor(stateVector)
  }

  changes (update: Uint8Array): boolean {
    return this.stored.checks.prepare(update) !== null
  }

  readyToShare (): null {
    return null
  }

  handOver (peerStateVector: Uint8Array): HandOver {
    // Always sent, so that the peer's acknowledgement proves it holds everything: that is what replication waits for.
    return { update: this.stored.missingFor(peerStateVector), localChanges: 0 }
  }

  attach (session: SyncSession): void {
    this.sessions.add(session)
  }

  detach (session: SyncSession): void {
    this.sessions.delete(session)
    if (this.awareness !== null) {
      const removed = this.awareness.removeOwnedBy(session)
      if (removed.length > 0) this.sessions.forwardAwareness(encodeAwarenessEntries(removed), session)
      if (this.awareness.size === 0) this.dropAwareness()
    }
    this.replication?.ended(session)
  }

  synced (session: SyncSession): void {
    this.replication?.progressed(session)
  }

  acknowledged (session: SyncSession): void {
    this.replication?.progressed(session)
  }

  /**
   * Validates and stores an update from `from` (null: from this relay itself). Throws a
   * ProtocolError, having stored nothing, if it is malformed or does not fit the document,
   * or a LimitError if it breaks a limit; otherwise returns a promise that resolves once
   * the update is durable: committed to the store (whether by this write or an earlier one)
   * and, for a client's update in a cluster, on enough other relays. What is stored and
   * forwarded is the update in its normalised form (see update-shape.ts).
   */
  applyUpdate (update: Uint8Array, from: SyncSession | null): Promise<void> {
    if (this.isDeleted) throw new DocDeletedError(this.docId)
    this.lastActivity = Date.now()
    const started = this.observer === null ? 0 : performance.now()
    const source = from === null ? 'http' : from.peer.isRelay ? 'relay' : 'client'
    this.observer?.received(source, update.length, this.docId)
    const prepared = this.stored.checks.prepare(update)
    if (prepared === null) return this.durable(from)
    const { shape } = prepared
    const { logBytes, snapshotBytes } = this.stored.sizes
    if (logBytes + snapshotBytes + shape.bytes.length > this.limits.maxDocumentBytes) {
      throw new LimitError(CloseCode.messageTooBig, `document ${this.docId} would exceed ${this.limits.maxDocumentBytes} bytes`)
    }
    this.stored.checks.checkWaiting(prepared.waits)
    this.stored.append(prepared).catch((error: unknown) => this.storeFailed(error))
    if (this.outgoing === null) {
      this.outgoing = []
      queueMicrotask(() => this.flushOutgoing())
    }
    this.outgoing.push({ update: shape.bytes, origin: from })
    this.replication?.stored()
    // What was taken is stored; the sender is cut off from adding more that cannot integrate.
    this.stored.checks.checkWaiting(prepared.waits)
    const durable = this.durable(from)
    if (this.observer !== null) durable.then(() => this.observer!.durable({ docId: this.docId, update: shape.bytes, source, seconds: (performance.now() - started) / 1000 }), () => {})
    return durable
  }

  /**
   * Durable for `from`: committed, and, unless it came from another relay, replicated
   * (asked once what is waiting to be forwarded has gone out, so that the quorum covers it).
   */
  private durable (from: SyncSession | null): Promise<void> {
    const committed = this.stored.settled()
    const replication = this.replication
    if (replication === null || from?.peer.isRelay === true) return committed
    const forwarded = this.outgoing === null ? Promise.resolve() : new Promise<void>(resolve => queueMicrotask(resolve))
    const started = this.observer === null ? 0 : performance.now()
    const confirmed = forwarded.then(() => replication.confirm())
    if (this.observer !== null) confirmed.then(() => this.observer!.replicated((performance.now() - started) / 1000), () => {})
    return Promise.all([committed, confirmed]).then(() => {})
  }

  /**
   * Validates and applies presence from `from`: a session may set or remove only the
   * entries it introduced (or new ones), its user is stamped on them as `sub`.
   * Throws a LimitError if the document would hold too many entries or an entry is too large.
   */
  applyAwareness (update: Uint8Array, from: SyncSession): void {
    this.lastActivity = Date.now()
    const awareness = this.awareness ?? new RelayAwareness(expired => this.sessions.forwardAwareness(expired, null))
    const allowed = admitAwareness(update, awareness, from, this.limits)
    const applied = awareness.apply(allowed, from)
    this.awareness = awareness
    if (awareness.size === 0) this.dropAwareness()
    if (applied.length > 0) this.sessions.forwardAwareness(encodeAwarenessEntries(applied), from)
  }

  /** Every known awareness state as one awareness update, or `null` if there is none. */
  awarenessStates (): Uint8Array | null {
    return this.awareness?.encodeAll() ?? null
  }

  private dropAwareness (): void {
    this.awareness?.destroy()
    this.awareness = null
  }

  /**
   * An update failed to be stored. What this document serves must not include it, so it is
   * given up: every session fails with a StorageError (clients are asked to try again, and
   * re-send what was not acknowledged) and the registry reloads the document from the store.
   */
  private storeFailed (error: unknown): void {
    if ((this.flags & STORAGE_FAILED) !== 0) return
    this.flags |= STORAGE_FAILED
    if (error instanceof FencedError) {
      this.options.logger.warn({ doc: this.docId, reason: error.message }, 'another relay serves this document now; dropping it')
      this.options.onStoreFailed?.(this, error)
      return
    }
    this.options.logger.error({ err: error, doc: this.docId }, 'failed to store an update; reloading the document from storage')
    this.failSessions(new StorageError(`could not store an update of ${this.docId}; try again`))
    this.options.onStoreFailed?.(this, error)
  }

  /** Fails every session with `error`: each peer is told why (refused, redirected or closed) and the session ends. */
  failSessions (error: Error): void {
    for (const session of [...this.sessions]) session.fail(error)
  }

  /** Resolves once everything stored so far is committed; rejects if a write failed. */
  settled (): Promise<void> {
    return this.stored.settled()
  }

  /** Whether anything is stored for the document. */
  get isEmpty (): boolean {
    const { logBytes, snapshotBytes } = this.stored.sizes
    return logBytes + snapshotBytes === 0
  }

  /** Bytes stored for the document, and when it last changed (0: unknown). */
  get stats (): { bytes: number, updatedAt: number } {
    const { logBytes, snapshotBytes } = this.stored.sizes
    return { bytes: logBytes + snapshotBytes, updatedAt: this.stored.lastChange }
  }

  /** The whole document as one Yjs (v1) update. */
  wholeUpdate (): Uint8Array {
    return this.stored.missingFor(EMPTY_STATE_VECTOR)
  }

  /** Whether {@link markDeleted} was called: the document takes no more sessions or updates. */
  get isDeleted (): boolean {
    return (this.flags & DELETED) !== 0
  }

  /** The document is being deleted: every session ends with a DocDeletedError (4410), and nothing more is taken. */
  markDeleted (): void {
    this.flags |= DELETED
    this.failSessions(new DocDeletedError(this.docId))
  }

  /** Releases the document's memory; the stored state is untouched. Its sessions must have ended. */
  destroy (): void {
    this.flags |= DESTROYED
    this.dropAwareness()
    this.stored.close()
  }

  /**
   * Forwards the updates stored since the last time, merged (in groups, see
   * {@link mergeInGroups}), to every session except the one each came from: a session
   * that sent some of them gets the others' merged on their own.
   */
  private flushOutgoing (): void {
    const batch = this.outgoing ?? []
    this.outgoing = null
    if ((this.flags & DESTROYED) !== 0 || this.sessions.size === 0) return
    const senders = new Set(batch.map(entry => entry.origin))
    if (senders.size === 1) {
      const [origin] = senders
      // A writer alone on its document: nobody to forward to, and merging would be wasted.
      if (this.sessions.size === 1 && origin !== undefined && origin !== null && this.sessions.has(origin)) return
      for (const merged of mergeInGroups(batch.map(entry => entry.update))) this.sessions.forwardUpdate(merged, origin ?? null)
      return
    }
    const others = [...this.sessions].filter(session => !senders.has(session))
    this.forwardTo(others, batch.map(entry => entry.update))
    for (const sender of senders) {
      if (sender !== null) this.forwardTo([sender], batch.filter(entry => entry.origin !== sender).map(entry => entry.update))
    }
  }

  private forwardTo (sessions: SyncSession[], updates: Uint8Array[]): void {
    if (sessions.length === 0) return
    for (const merged of mergeInGroups(updates)) {
      const frames = new FrameCache()
      for (const session of sessions) session.forwardUpdate(merged, 0, frames)
    }
  }
}
