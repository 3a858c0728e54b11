/**
 * One document open in a replica: its Y.Doc bound to local storage, its awareness, and its
 * acknowledgement counters. Every local update gets the next sequence number and is
 * written to the store together with the counters; it is handed to the relay session
 * only once it is stored. The counters survive restarts, so unacknowledged updates are
 * known (and re-sent by the next handshake) after one.
 */
import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import * as Y from 'yjs'
import { Awareness, encodeAwarenessUpdate } from 'y-protocols/awareness'
import type { DocId } from '../shared/wire/doc-id.js'
import { DocSession, type DocSessionHost, type SendNative } from '../shared/doc-session.js'
import { PersistedDoc } from '../shared/persisted-doc.js'
import type { DocStore } from '../shared/storage/store.js'

/** Transaction origin of the stored state applied at load. */
const STORAGE_ORIGIN = Symbol('storage')

interface Counters { localSeq: number, ackedSeq: number }

function encodeCounters ({ localSeq, ackedSeq }: Counters): Uint8Array {
  return encoding.encode(encoder => {
    encoding.writeVarUint(encoder, localSeq)
    encoding.writeVarUint(encoder, ackedSeq)
  })
}

function decodeCounters (meta: Uint8Array | null): Counters {
  if (meta === null) return { localSeq: 0, ackedSeq: 0 }
  const decoder = decoding.createDecoder(meta)
  return { localSeq: decoding.readVarUint(decoder), ackedSeq: decoding.readVarUint(decoder) }
}

interface Waiter { resolve: () => void, reject: (error: Error) => void }

/** A document open in a replica; see the module comment. */
export class LocalDoc implements DocSessionHost {
  readonly awareness: Awareness
  private counters: Counters
  private currentSession: DocSession | null = null
  private synced = false
  private syncWaiters: Waiter[] = []
  private durableWaiters: Array<Waiter & { seq: number }> = []
  private lastError: Error | null = null
  /** The last refusal by a relay, until the next successful sync. */
  private refusal: Error | null = null

  /** Called when a relay refuses the document (set by the replica). */
  onRefusedByRelay: (code: number, reason: string) => void = () => {}

  private constructor (private readonly store: DocStore, private readonly persisted: PersistedDoc, counters: Counters) {
    this.counters = counters
    this.awareness = new Awareness(this.ydoc)
    this.ydoc.on('update', this.onUpdate)
    this.awareness.on('update', this.onAwarenessUpdate)
  }

  /** Loads `docId` from `store` (no network). */
  static async open (store: DocStore, docId: DocId): Promise<LocalDoc> {
    const persisted = await PersistedDoc.load(store, docId, new Y.Doc(), { origin: STORAGE_ORIGIN })
    return new LocalDoc(store, persisted, decodeCounters(persisted.loadedMeta))
  }

  get docId (): DocId {
    return this.persisted.docId
  }

  get ydoc (): Y.Doc {
    return this.persisted.ydoc
  }

  /** Local updates not yet acknowledged by a relay. */
  get pending (): number {
    return this.counters.localSeq - this.counters.ackedSeq
  }

  localSeq (): number {
    return this.counters.localSeq
  }

  ackedSeq (): number {
    return this.counters.ackedSeq
  }

  locallyStored (): Promise<void> {
    return this.persisted.settled()
  }

  /** Starts syncing over a connection that `send`s native messages (replacing any other session). */
  attach (send: SendNative): DocSession {
    this.currentSession?.stop(false)
    this.currentSession = new DocSession(this, send)
    this.currentSession.start()
    return this.currentSession
  }

  /**
   * Ends `session` (if it is still the current one): its connection was lost, or, with
   * `closeOnRelay`, the document is leaving that connection.
   */
  detach (session: DocSession, closeOnRelay: boolean): void {
    session.stop(closeOnRelay)
    if (this.currentSession !== session) return
    this.currentSession = null
    this.synced = false
  }

  onSynced (): void {
    this.synced = true
    this.refusal = null
    for (const waiter of this.syncWaiters.splice(0)) waiter.resolve()
  }

  onAck (seq: number): void {
    if (seq <= this.counters.ackedSeq) return
    this.counters.ackedSeq = Math.min(seq, this.counters.localSeq)
    this.saveCounters().catch(error => this.fail(error as Error))
    this.durableWaiters = this.durableWaiters.filter(waiter => {
      if (waiter.seq > this.counters.ackedSeq) return true
      waiter.resolve()
      return false
    })
  }

  onRefused (code: number, reason: string): void {
    this.synced = false
    const error = new Error(`relay refused document ${this.docId} (${code}): ${reason}`)
    for (const waiter of this.syncWaiters.splice(0)) waiter.reject(error)
    this.refusal = error
    this.onRefusedByRelay(code, reason)
  }

  /** Resolves once the document has completed a sync with a relay (now, if it is synced). */
  whenSynced (): Promise<void> {
    if (this.synced) return Promise.resolve()
    if (this.refusal !== null) return Promise.reject(this.refusal)
    return new Promise((resolve, reject) => this.syncWaiters.push({ resolve, reject }))
  }

  /** Resolves once every local update made so far is acknowledged as durable. */
  whenDurable (): Promise<void> {
    if (this.lastError !== null) return Promise.reject(this.lastError)
    const seq = this.counters.localSeq
    if (seq <= this.counters.ackedSeq) return Promise.resolve()
    return new Promise((resolve, reject) => this.durableWaiters.push({ seq, resolve, reject }))
  }

  /** Stops syncing, rejects waiters, releases the Y.Doc; resolves once local writes are stored. */
  async close (): Promise<void> {
    if (this.currentSession !== null) this.detach(this.currentSession, true)
    const closed = new Error(`document ${this.docId} was closed`)
    for (const waiter of [...this.syncWaiters.splice(0), ...this.durableWaiters.splice(0)]) waiter.reject(closed)
    this.ydoc.off('update', this.onUpdate)
    this.awareness.off('update', this.onAwarenessUpdate)
    this.awareness.destroy()
    await this.persisted.settled().catch(() => {})
    this.ydoc.destroy()
  }

  private saveCounters (): Promise<void> {
    return this.store.setMeta(this.docId, encodeCounters(this.counters))
  }

  private fail (error: Error): void {
    this.lastError = error
    for (const waiter of this.durableWaiters.splice(0)) waiter.reject(error)
  }

  // A Yjs listener that throws stops the Y.Doc from emitting further updates: never throw.
  private readonly onUpdate = (update: Uint8Array, origin: unknown): void => {
    if (origin === STORAGE_ORIGIN) return
    const stored = this.persisted.write(update)
    if (origin instanceof DocSession) {
      stored.catch(error => this.fail(error as Error))
      return
    }
    // A local change: number it and store the counters in the same commit as the update.
    const seq = ++this.counters.localSeq
    const counted = this.saveCounters()
    Promise.all([stored, counted]).then(() => this.currentSession?.sendLocal(seq, update), error => this.fail(error as Error))
  }

  private readonly onAwarenessUpdate = ({ added, updated, removed }: { added: number[], updated: number[], removed: number[] }, origin: unknown): void => {
    if (origin instanceof DocSession) return
    const changed = [...added, ...updated, ...removed]
    this.currentSession?.sendAwareness(encodeAwarenessUpdate(this.awareness, changed))
  }
}
