/**
 * One document open in a replica, as a sync host: its Y.Doc bound to local storage, its
 * presence, the sessions it syncs over (relays and peers) and its durability counters.
 *
 * Every update is stored locally before it goes anywhere, then forwarded to every session
 * but the one it came from. Local changes (transactions) are gathered per turn of the
 * event loop into one update, stored with one write of the count of local changes in the
 * same commit, so after a restart (or a crash, which loses at most the turn in progress)
 * the replica still knows how many of its changes no relay has acknowledged, and the next
 * handshake re-sends them. Only a relay's acknowledgement makes a
 * change durable; a replica peer's only means it holds the change.
 */
import * as Y from 'yjs'
import { Awareness, applyAwarenessUpdate, encodeAwarenessUpdate, removeAwarenessStates } from 'y-protocols/awareness'
import type { DocId } from '../shared/wire/doc-id.js'
import type { DocStore } from '../shared/storage/store.js'
import { PersistedDoc } from '../shared/storage/persisted-doc.js'
import { decodeCounters, pendingOf, updateCounters, type Counters, type WriterCounts } from './counters.js'
import { SessionSet } from '../shared/sync/session-set.js'
import { SyncSession, type DocumentHost, type HandOver } from '../shared/sync/session.js'
import { decodeStateVector } from '../shared/wire/state-vector.js'
import { encodeAwarenessEntries } from '../shared/wire/awareness.js'
import { validateUpdate } from '../shared/validation/update-validation.js'
import { ClosedError, DocLoadError, LimitError, PetalError, RefusedError, StorageError } from '../shared/errors.js'
import { DocumentChecks, type PreparedUpdate } from '../shared/validation/document-checks.js'
import { TooManyClientsError } from '../shared/validation/update-shape.js'
import { DEFAULT_LIMITS, type Limits } from '../shared/listen/limits.js'
import { CloseCode } from '../shared/wire/close-codes.js'
import { admitAwareness, type AwarenessLimits, type PresenceView } from '../shared/validation/awareness.js'
import { TransactionBatch } from './transaction-batch.js'

/** Transaction origin of the stored state applied at load. */
const STORAGE_ORIGIN = Symbol('storage')

/** Whether sorted, merged deletion ranges cover [clock, clock + len). */
function coveredBy (ranges: Array<{ clock: number, len: number }>, clock: number, len: number): boolean {
  let low = 0
  let high = ranges.length - 1
  while (low <= high) {
    const mid = (low + high) >> 1
    const range = ranges[mid]!
    if (range.clock + range.len <= clock) low = mid + 1
    else if (range.clock > clock) high = mid - 1
    else return range.clock + range.len >= clock + len
  }
  return false
}

function presenceOf (doc: LocalDoc): PresenceView {
  return {
    get size () {
      return doc.awareness.getStates().size
    },
    ownerOf: clientId => doc.presenceOwner(clientId)
  }
}

interface Waiter { resolve: () => void, reject: (error: Error) => void }

/** A relay's refusal: of the document (a docError), or of the whole connection (4401). */
export interface Refusal {
  /** A close code: 4401 no valid token, 4403 forbidden, 4400 an update the relay refuses, 4503 unavailable, ... */
  code: number
  reason: string
}

/** How one session of a document stands, as reported by a handle's `peers` (`replica.doc(docId).peers`). */
export interface SessionStatus {
  /** The peer's id (a relay's id, or a replica's). */
  peerId: string
  /** Whether the peer is a relay: only its acknowledgements make changes durable. */
  isRelay: boolean
  /** `syncing` until the handshake is done (the document is synced with the peer from then on), then `sending` while acknowledgements are due and `acked` once everything sent is acknowledged. */
  state: 'syncing' | 'sending' | 'acked'
}

/** The limits a document holds its peers to, as a relay holds its clients (relays themselves are trusted). */
export type PeerLimits = AwarenessLimits & Pick<Limits, 'maxDocumentBytes' | 'maxWaitingBytes' | 'maxClientsPerDocument'>

/** Options of a {@link LocalDoc}: who writes, and limits on what peers send (a replica faces the same input from them as a relay). */
export interface LocalDocOptions {
  /** This replica's id, under which it counts its local changes in the store (see `counters.ts`). Default ''. */
  writer?: string
  /** Default: a relay's defaults. */
  limits?: PeerLimits
}

/** A document open in a replica; see the module comment. */
export class LocalDoc implements DocumentHost {
  readonly awareness: Awareness
  private readonly sessions = new SessionSet()
  /** This replica's own counts for the document (from its stored entry, once loaded), local changes counted once their write started. */
  private counters: WriterCounts = { local: 0, durable: 0 }
  /** Other writers' counts as loaded, until everything loaded is durable. */
  private loaded: Counters = new Map()
  /** The document bound to its stored log, once loaded. */
  private persisted: PersistedDoc | null = null
  /** Local changes not written yet: those of this turn, or made before the document loaded. */
  private batch = new TransactionBatch()
  /** Resolves once the stored state is applied to the Y.Doc; rejects if it cannot be loaded. */
  readonly whenLoaded: Promise<void>
  /** Local changes stored and forwarded so far. */
  private shared: number
  /** Whether the update being applied integrated anything (its Yjs update event fired). */
  private integrated = false
  /** Which session brought each remote presence state. */
  private readonly presenceOwners = new Map<number, SyncSession>()
  /**
   * A relay's checks of the updates peers send (items against the document's, clients,
   * waiting bytes), kept while peers' sessions are attached: built from the Y.Doc's state
   * the first time a peer sends an update, then told every update the document takes.
   */
  private checks: DocumentChecks | null = null
  private isSynced = false
  private syncWaiters: Waiter[] = []
  private durableWaiters: Array<Waiter & { local: number }> = []
  private lastError: Error | null = null
  /** Set once closed: a wait begun after it (or just before, in a call still on its way) fails at once instead of hanging. */
  private closedError: ClosedError | null = null
  /** The last refusal by a relay, until the next sync with one. */
  private lastRefusal: Refusal | null = null
  /**
   * Whether a relay refused an update of this document as invalid (4400): its local state
   * holds something the relay will never take, so it no longer syncs (re-sending it on every
   * handshake would only cost the link again) until it is opened anew.
   */
  private isQuarantined = false

  /** Called when a relay or a peer refuses the document (set by the replica). */
  onRefused: (code: number, reason: string, byRelay: boolean) => void = () => {}
  /** Called when the pending count or a session's status changes (set by the replica). */
  onChange: () => void = () => {}

  /**
   * Starts loading `docId` from `store` into `ydoc` (no network); usable at once: changes
   * made to `ydoc` before it has loaded are kept, and stored once it has.
   */
  constructor (private readonly store: DocStore, readonly docId: DocId, readonly ydoc: Y.Doc, private readonly options: LocalDocOptions = {}) {
    this.shared = 0
    this.awareness = new Awareness(ydoc)
    ydoc.on('afterTransactionCleanup', this.onTransaction)
    this.awareness.on('update', this.onAwarenessUpdate)
    this.whenLoaded = this.load()
    this.whenLoaded.catch(() => {}) // reported to whoever waits for it
  }

  /** Loads `docId` from `store` (no network). */
  static async open (store: DocStore, docId: DocId, options: LocalDocOptions = {}): Promise<LocalDoc> {
    const doc = new LocalDoc(store, docId, new Y.Doc(), options)
    await doc.whenLoaded
    return doc
  }

  /** Whether the stored state has been applied. */
  get isLoaded (): boolean {
    return this.persisted !== null
  }

  /** Whether some local change is not in the local store yet (its write has not finished). */
  get unsaved (): boolean {
    return this.batch.count > 0 || this.counters.local > this.shared
  }

  /** Whether a relay is in sync with the document now. */
  get inSyncWithRelay (): boolean {
    return this.isSynced
  }

  /** The last refusal by a relay, until the next sync with one; null if none. */
  get refusal (): Refusal | null {
    return this.lastRefusal
  }

  /** Whether the document no longer syncs because a relay refused an update of it as invalid (see {@link refused}). */
  get quarantined (): boolean {
    return this.isQuarantined
  }

  /**
   * Local changes saved in the local store (their write finished) that no relay has
   * acknowledged yet: this replica's, and those of other writers it loaded from the store.
   */
  get pending (): number {
    return Math.max(0, this.shared - this.counters.durable) + this.othersPending()
  }

  private othersPending (): number {
    let pending = 0
    for (const counts of this.loaded.values()) pending += pendingOf(counts)
    return pending
  }

  private async load (): Promise<void> {
    const persisted = await PersistedDoc.load(this.store, this.docId, this.ydoc, { origin: STORAGE_ORIGIN })
    let stored: Counters
    try {
      stored = decodeCounters(persisted.loadedMeta)
    } catch (error) {
      // Refused rather than read as nothing pending; the stored data is left as it is.
      throw new DocLoadError(`document ${this.docId}: ${(error as Error).message}`)
    }
    const writer = this.options.writer ?? ''
    // Counting starts from this writer's stored entry (a replica that reopens with its own id), if any.
    this.counters = stored.get(writer) ?? { local: 0, durable: 0 }
    stored.delete(writer)
    this.loaded = stored
    this.shared = this.counters.local
    this.persisted = persisted
    this.storeLocal() // changes made before the load
    this.onChange()
  }

  /** How each session of the document stands. */
  get status (): SessionStatus[] {
    return [...this.sessions].map(session => ({
      peerId: session.peer.peerId,
      isRelay: session.peer.isRelay,
      state: !session.live ? 'syncing' : session.caughtUp ? 'acked' : 'sending'
    }))
  }

  // --- DocumentHost ---

  stateVector (): Uint8Array {
    return Y.encodeStateVector(this.ydoc)
  }

  missingFor (stateVector: Uint8Array): Uint8Array {
    decodeStateVector(stateVector)
    return Y.encodeStateAsUpdate(this.ydoc, stateVector)
  }

  changes (update: Uint8Array): boolean {
    const { structs, ds } = Y.decodeUpdate(update)
    const state = Y.decodeStateVector(Y.encodeStateVector(this.ydoc))
    if (structs.some(struct => !(struct instanceof Y.Skip) && struct.id.clock + struct.length > (state.get(struct.id.client) ?? 0))) return true
    if (ds.clients.size === 0) return false
    const deleted = Y.createDeleteSetFromStructStore(this.ydoc.store)
    for (const [client, ranges] of ds.clients) {
      for (const { clock, len } of ranges) {
        if (!coveredBy(deleted.clients.get(client) ?? [], clock, len)) return true
      }
    }
    return false
  }

  readyToShare (): Promise<void> | null {
    if (this.persisted!.idle && this.batch.count === 0 && this.lastError === null) return null
    return this.whenStored()
  }

  handOver (peerStateVector: Uint8Array): HandOver {
    // Always, deletions included: the peer may lack some that reached this replica from
    // elsewhere (a neighbour without a relay). A relay acknowledges what it already has
    // even from a replica that may only read.
    return { update: Y.encodeStateAsUpdate(this.ydoc, peerStateVector), localChanges: this.counters.local }
  }

  /**
   * A peer's update gets a relay's checks (see {@link checks}), and what it brings is what is
   * applied, stored and forwarded; a relay's update is trusted to be valid, and checked for
   * its shape only (Yjs may apply part of a malformed update before it throws).
   */
  applyUpdate (received: Uint8Array, from: SyncSession): Promise<void> {
    let update = received
    let prepared: PreparedUpdate | null = null
    if (from.peer.isRelay) {
      if (this.checks === null) validateUpdate(update)
      else this.checks.recordOwn(update)
    } else {
      const { logBytes, snapshotBytes } = this.persisted!.sizes
      const limit = this.limits.maxDocumentBytes
      if (logBytes + snapshotBytes + update.length > limit) {
        throw new LimitError(CloseCode.messageTooBig, `document ${this.docId} would exceed ${limit} bytes`)
      }
      prepared = this.peerChecks().prepare(update)
      if (prepared === null) return this.persisted!.settled() // nothing new
      update = prepared.shape.bytes
    }
    // Yjs merges what waits into the existing pending object, replacing its update bytes: compare those.
    const waitingBefore = this.ydoc.store.pendingStructs?.update
    const pendingDs = this.ydoc.store.pendingDs
    this.integrated = false
    Y.applyUpdate(this.ydoc, update, from)
    const stored = this.persisted!.settled()
    // What came in goes on as it came, to every other session, if any of it was new here:
    // integrated, or waiting in Yjs for what it depends on. (Forwarding what Yjs emits
    // instead would send structs that waited here, and were integrated by a later update
    // from another peer, to everyone but that peer, who may never have had them.)
    const store = this.ydoc.store
    if (this.integrated || store.pendingStructs?.update !== waitingBefore || store.pendingDs !== pendingDs) {
      stored.then(() => this.sessions.forwardUpdate(update, from, this.shared), () => {})
    }
    if (prepared !== null) {
      this.checks!.record(prepared)
      // What was taken is kept; the sender is cut off from adding more that cannot integrate.
      this.checks!.checkWaiting(prepared.waits)
    }
    return stored
  }

  private get limits (): PeerLimits {
    return this.options.limits ?? DEFAULT_LIMITS
  }

  /** The checks of peers' updates, built from the document's state if there are none yet. */
  private peerChecks (): DocumentChecks {
    if (this.checks !== null) return this.checks
    const state = (): Uint8Array[] => [Y.encodeStateAsUpdate(this.ydoc)]
    const checks = new DocumentChecks(state, { docId: this.docId, maxClients: this.limits.maxClientsPerDocument, maxWaitingBytes: this.limits.maxWaitingBytes })
    try {
      checks.loadPart(state()[0]!)
    } catch (error) {
      if (error instanceof TooManyClientsError) throw new LimitError(CloseCode.policyViolation, `document ${this.docId} has more than ${this.limits.maxClientsPerDocument} clients`)
      throw error
    }
    this.checks = checks
    return checks
  }

  applyAwareness (update: Uint8Array, from: SyncSession): void {
    const allowed = admitAwareness(update, this.presence, from, from.peer.isRelay ? undefined : this.limits)
    if (allowed.length > 0) applyAwarenessUpdate(this.awareness, encodeAwarenessEntries(allowed), from)
  }

  awarenessStates (): Uint8Array | null {
    const clients = [...this.awareness.getStates().keys()]
    return clients.length === 0 ? null : encodeAwarenessUpdate(this.awareness, clients)
  }

  attach (session: SyncSession): void {
    this.sessions.add(session)
    this.onChange()
  }

  detach (session: SyncSession): void {
    this.sessions.delete(session)
    const brought = [...this.presenceOwners].filter(([, owner]) => owner === session).map(([clientId]) => clientId)
    if (brought.length > 0) removeAwarenessStates(this.awareness, brought, session)
    if (session.peer.isRelay && ![...this.sessions].some(other => other.peer.isRelay && other.synced)) this.isSynced = false
    // The checks cost memory; with no peer left to send updates they are built again when one does.
    if (!session.peer.isRelay && ![...this.sessions].some(other => !other.peer.isRelay)) this.checks = null
    this.onChange()
  }

  synced (session: SyncSession): void {
    if (session.peer.isRelay) {
      this.isSynced = true
      this.lastRefusal = null
      for (const waiter of this.syncWaiters.splice(0)) waiter.resolve()
    }
    this.onChange()
  }

  acknowledged (session: SyncSession, localChanges: number): void {
    // Any acknowledgement from a relay covers its session's handshake update, which held everything loaded.
    const loadedNowDurable = session.peer.isRelay && this.othersPending() > 0
    if (session.peer.isRelay && (localChanges > this.counters.durable || loadedNowDurable)) {
      this.counters.durable = Math.max(this.counters.durable, Math.min(localChanges, this.counters.local))
      this.saveCounters(loadedNowDurable).catch(error => this.fail(error as Error))
      if (loadedNowDurable) this.loaded = new Map()
      this.durableWaiters = this.durableWaiters.filter(waiter => {
        if (waiter.local > this.counters.durable || this.loaded.size > 0) return true
        waiter.resolve()
        return false
      })
    }
    this.onChange()
  }

  // --- the replica's view ---

  /** Who brought `clientId`'s presence: a session, `local` (this replica's own), or undefined if there is none. */
  presenceOwner (clientId: number): SyncSession | 'local' | undefined {
    const owner = this.presenceOwners.get(clientId)
    if (owner !== undefined) return owner
    return this.awareness.getStates().has(clientId) || clientId === this.awareness.clientID ? 'local' : undefined
  }

  /**
   * A relay (`byRelay`) or a peer refused the document. Only a relay's refusal is the
   * document's status: a peer may say anything. A relay's 4400 (an update it will never
   * take) quarantines the document; its 4400 and 4403 (a write the token does not allow)
   * mean what is pending will not become durable, so waiters are told.
   */
  refused (code: number, reason: string, byRelay: boolean): void {
    if (byRelay) {
      if (code === CloseCode.badRequest) this.isQuarantined = true
      this.relayRefused({ code, reason }, code === CloseCode.badRequest || code === CloseCode.forbidden)
    }
    this.onRefused(code, reason, byRelay)
  }

  /** A relay refused the connection the document syncs over (4401: no valid token): the document's status until it syncs again. */
  linkRefused (refusal: Refusal): void {
    this.relayRefused(refusal, false)
  }

  private relayRefused (refusal: Refusal, final: boolean): void {
    this.isSynced = false
    this.lastRefusal = refusal
    const error = this.refusalError()!
    for (const waiter of this.syncWaiters.splice(0)) waiter.reject(error)
    if (final) for (const waiter of this.durableWaiters.splice(0)) waiter.reject(error)
    this.onChange()
  }

  private refusalError (): Error | null {
    const refusal = this.lastRefusal
    return refusal === null ? null : new RefusedError(refusal, `relay refused document ${this.docId} (${refusal.code}): ${refusal.reason}`)
  }

  /** Resolves once the document has completed a sync with a relay (now, if it is synced). */
  whenSynced (): Promise<void> {
    if (this.isSynced) return Promise.resolve()
    const refused = this.refusalError() ?? this.closedError
    if (refused !== null) return Promise.reject(refused)
    return new Promise((resolve, reject) => this.syncWaiters.push({ resolve, reject }))
  }

  /** Resolves once every local change made so far is acknowledged as durable by a relay. */
  whenDurable (): Promise<void> {
    if (this.lastError !== null) return Promise.reject(this.lastError)
    if (this.closedError !== null) return Promise.reject(this.closedError)
    const local = this.counters.local + this.batch.count
    if (local <= this.counters.durable && this.othersPending() === 0) return Promise.resolve()
    // What the relay refused (see `refused`) will not become durable.
    if (this.isQuarantined || this.lastRefusal?.code === CloseCode.forbidden) return Promise.reject(this.refusalError())
    return new Promise((resolve, reject) => this.durableWaiters.push({ local, resolve, reject }))
  }

  /** Ends every session, rejects waiters, releases the Y.Doc; resolves once local writes are stored. */
  async close (): Promise<void> {
    if (this.isLoaded) this.storeLocal()
    for (const session of [...this.sessions]) session.end(true)
    this.closedError = new ClosedError(`document ${this.docId} was closed`)
    for (const waiter of [...this.syncWaiters.splice(0), ...this.durableWaiters.splice(0)]) waiter.reject(this.closedError)
    this.ydoc.off('afterTransactionCleanup', this.onTransaction)
    this.awareness.off('update', this.onAwarenessUpdate)
    this.awareness.destroy()
    await this.whenLoaded.catch(() => {})
    await this.persisted?.settled().catch(() => {})
    this.ydoc.destroy()
  }

  /** Resolves once everything applied so far is stored, including changes made while waiting. */
  async whenStored (): Promise<void> {
    await this.whenLoaded
    let local: number
    do {
      this.storeLocal()
      local = this.counters.local
      await this.persisted!.settled()
    } while (local !== this.counters.local)
  }

  /** Presence as admission sees it: states no session brought are this replica's own. */
  private readonly presence: PresenceView = presenceOf(this)

  private saveCounters (loadedDurable = false): Promise<void> {
    return this.store.updateMeta(this.docId, updateCounters(this.options.writer ?? '', { ...this.counters }, this.loaded, loadedDurable))
  }

  private fail (cause: Error): void {
    const error = cause instanceof PetalError ? cause : new StorageError(`document ${this.docId} could not be saved locally: ${cause.message}`)
    this.lastError = error
    for (const waiter of this.durableWaiters.splice(0)) waiter.reject(error)
  }

  // A Yjs listener that throws stops the Y.Doc from emitting further updates: never throw.
  private readonly onTransaction = (transaction: Y.Transaction): void => {
    try {
      const origin = transaction.origin
      if (origin === STORAGE_ORIGIN) return
      if (origin instanceof SyncSession) {
        // A peer's update: what it integrated is stored; applyUpdate forwards what came in.
        const update = TransactionBatch.encode(transaction)
        if (update === null) return
        this.integrated = true
        this.persisted!.write(update).catch(error => this.fail(error as Error))
        return
      }
      if (!this.batch.add(transaction) || this.batch.count > 1) return
      // The first local change of this turn: stored, with those that follow it, once the turn's code has run.
      if (this.persisted !== null) queueMicrotask(this.storeLocal)
      this.onChange()
    } catch (error) {
      this.fail(error as Error)
    }
  }

  /**
   * Starts writing the local changes not written yet, as one update: counted, stored with
   * their count in the same commit, then sent on. Runs by itself at the end of every turn
   * with changes; call it before reading the store directly. Until the document has loaded
   * they wait (the load calls this).
   */
  readonly storeLocal = (): void => {
    if (this.batch.count === 0 || this.persisted === null) return
    const batch = this.batch
    this.batch = new TransactionBatch()
    let update: Uint8Array
    try {
      update = batch.encode(this.ydoc)
    } catch (error) {
      return this.fail(error as Error) // runs as a microtask too: never throw
    }
    const local = this.counters.local += batch.count
    try {
      this.checks?.recordOwn(update)
    } catch {
      this.checks = null // built again from the document's state when a peer next sends an update
    }
    const stored = this.persisted.write(update)
    const counted = this.saveCounters()
    Promise.all([stored, counted]).then(() => {
      this.shared = Math.max(this.shared, local)
      this.sessions.forwardUpdate(update, null, this.shared)
      this.onChange()
    }, error => this.fail(error as Error))
  }

  private readonly onAwarenessUpdate = ({ added, updated, removed }: { added: number[], updated: number[], removed: number[] }, origin: unknown): void => {
    const from = origin instanceof SyncSession ? origin : null
    if (from !== null) {
      for (const clientId of [...added, ...updated]) this.presenceOwners.set(clientId, from)
    }
    for (const clientId of removed) this.presenceOwners.delete(clientId)
    const changed = [...added, ...updated, ...removed]
    if (changed.length > 0) this.sessions.forwardAwareness(encodeAwarenessUpdate(this.awareness, changed), from)
  }
}
