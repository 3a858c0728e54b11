/**
 * One loaded document on a relay: its Y.Doc, its awareness, its stored log, and the peers
 * connected to it, whatever protocol they speak. Updates are validated before they are
 * applied, stored once, and forwarded to every other peer; awareness changes go to every
 * peer. Updates that arrive in the same turn of the event loop are merged and broadcast
 * as one message to every peer, encoded once per protocol, not once per peer: fewer,
 * larger frames are what lets many readers keep up with a fast writer.
 */
import type { Logger } from 'pino'
import * as Y from 'yjs'
import { Awareness, applyAwarenessUpdate, encodeAwarenessUpdate, removeAwarenessStates } from 'y-protocols/awareness'
import type { DocId } from '../shared/doc-id.js'
import { PersistedDoc } from '../shared/persisted-doc.js'
import type { DocStore } from '../shared/store.js'
import { decodeAwarenessUpdate, decodeStateVector, encodeAwarenessEntries, validateUpdate } from '../shared/update-validation.js'
import { CloseCode } from '../shared/close-codes.js'
import { DEFAULT_LIMITS, LimitError, type Limits } from './limits.js'

/** How a protocol frames what a document broadcasts. Shared by every peer of that protocol. */
export interface PeerCodec {
  update(docId: DocId, update: Uint8Array): Uint8Array
  awareness(docId: DocId, update: Uint8Array): Uint8Array
}

/** A connection attached to a document. */
export interface DocPeer {
  readonly codec: PeerCodec
  /** Sends one framed message. Must not throw. */
  send(message: Uint8Array): void
  /** The authenticated user, stamped as `sub` onto the awareness states this peer sets. */
  readonly user?: string
}

/** Updates merged into one broadcast message at most. */
const MAX_MERGED_UPDATES = 32

/** Transaction origin of the stored state applied while loading. */
const STORAGE_ORIGIN = Symbol('storage')

/** Options for loading a {@link RelayDocument}. */
export interface RelayDocumentOptions {
  store: DocStore
  log: Logger
  compactMinBytes?: number
  /** Document size, pending-update and awareness limits. Default {@link DEFAULT_LIMITS}. */
  limits?: Pick<Limits, 'maxDocumentBytes' | 'maxPendingBytes' | 'maxAwarenessEntries' | 'maxAwarenessStateBytes'>
}

/** A document held in memory by a relay; see the module comment. */
export class RelayDocument {
  readonly awareness: Awareness
  private readonly peers = new Set<DocPeer>()
  /** Awareness client ids set by an attached peer, which alone may change or remove them. */
  private readonly awarenessOwners = new Map<number, DocPeer>()
  /** Updates applied this turn, not yet broadcast, with the peer that sent each (null if unknown or mixed). */
  private outgoing: Array<{ update: Uint8Array, sender: unknown }> = []
  /** True while applying an update that may integrate structs other peers sent earlier (see the replicator). */
  unblocking = false
  /** Called with an update that (partly) waits for missing dependencies, so replication can forward it. */
  onPending: ((update: Uint8Array, origin: unknown) => void) | null = null

  private constructor (
    readonly docId: DocId,
    private readonly persisted: PersistedDoc,
    private readonly log: Logger,
    private readonly limits: NonNullable<RelayDocumentOptions['limits']>
  ) {
    this.awareness = new Awareness(this.ydoc)
    // The relay itself has no presence.
    this.awareness.setLocalState(null)
    this.ydoc.on('update', this.onDocUpdate)
    this.awareness.on('update', this.onAwarenessUpdate)
  }

  /** Loads `docId` from the store. Rejects (storing nothing) if the stored data is unreadable. */
  static async load (docId: DocId, options: RelayDocumentOptions): Promise<RelayDocument> {
    const ydoc = new Y.Doc({ gc: true })
    const persistedOptions = { origin: STORAGE_ORIGIN, ...(options.compactMinBytes === undefined ? {} : { compactMinBytes: options.compactMinBytes }) }
    try {
      const persisted = await PersistedDoc.load(options.store, docId, ydoc, persistedOptions)
      return new RelayDocument(docId, persisted, options.log, options.limits ?? DEFAULT_LIMITS)
    } catch (error) {
      ydoc.destroy()
      throw error
    }
  }

  /** The document's Y.Doc. */
  get ydoc (): Y.Doc {
    return this.persisted.ydoc
  }

  /** Attaches `peer`: it receives every later update and awareness change. */
  addPeer (peer: DocPeer): void {
    this.peers.add(peer)
  }

  /** Detaches `peer` and removes the awareness entries it introduced. */
  removePeer (peer: DocPeer): void {
    this.peers.delete(peer)
    const clients = [...this.awarenessOwners].filter(([, owner]) => owner === peer).map(([client]) => client)
    for (const client of clients) this.awarenessOwners.delete(client)
    if (clients.length > 0) removeAwarenessStates(this.awareness, clients, peer)
    this.forgetRemoved(clients)
  }

  /** The document's state vector. */
  stateVector (): Uint8Array {
    return Y.encodeStateVector(this.ydoc)
  }

  /** What a peer with `stateVector` lacks. Throws a ProtocolError if the state vector is malformed. */
  missingFor (stateVector: Uint8Array): Uint8Array {
    decodeStateVector(stateVector)
    return Y.encodeStateAsUpdate(this.ydoc, stateVector)
  }

  /**
   * Validates and applies an update from `origin`. Throws a ProtocolError, having applied
   * nothing, if it is malformed; otherwise returns a promise that resolves once the update
   * is durable (committed to the store, whether by this write or an earlier one).
   */
  applyUpdate (update: Uint8Array, origin: object): Promise<void> {
    validateUpdate(update)
    const { logBytes, snapshotBytes } = this.persisted.sizes
    if (logBytes + snapshotBytes + update.length > this.limits.maxDocumentBytes) {
      throw new LimitError(CloseCode.messageTooBig, `document ${this.docId} would exceed ${this.limits.maxDocumentBytes} bytes`)
    }
    const store = this.ydoc.store
    const pendingBytes = (): number => (store.pendingStructs?.update.length ?? 0) + (store.pendingDs?.length ?? 0)
    const tooMuchPending = (): LimitError => new LimitError(CloseCode.policyViolation, `more than ${this.limits.maxPendingBytes} bytes of updates wait for missing dependencies`)
    if (pendingBytes() > this.limits.maxPendingBytes) throw tooMuchPending()
    // Yjs merges new pending structs into the existing record in place: compare its bytes, not the record.
    const pendingBefore = [store.pendingStructs?.update ?? null, store.pendingDs]
    // Applying may integrate structs other peers sent earlier: replication must then
    // forward the result to every replica, the sending relay included.
    this.unblocking = pendingBefore[0] !== null || pendingBefore[1] !== null
    try {
      Y.applyUpdate(this.ydoc, update, origin)
    } finally {
      this.unblocking = false
    }
    if ((store.pendingStructs !== null && store.pendingStructs.update !== pendingBefore[0]) || (store.pendingDs !== null && store.pendingDs !== pendingBefore[1])) {
      // Parts still waiting for their dependencies emit no update event; store the update
      // as received so that what is acknowledged is on disk, and let replication see it.
      this.write(update)
      this.onPending?.(update, origin)
      if (pendingBytes() > this.limits.maxPendingBytes) throw tooMuchPending()
    }
    return this.persisted.settled()
  }

  /**
   * Validates and applies an awareness update from `peer` (an attached peer, or another
   * origin such as a relay link). An attached peer may only set or remove the entries it
   * introduced; its entries get its user stamped as `sub`. Throws a LimitError if the
   * document would hold too many entries or an entry is too large.
   */
  applyAwareness (peer: object, update: Uint8Array): void {
    const client = this.peers.has(peer as DocPeer) ? peer as DocPeer : null
    const allowed = decodeAwarenessUpdate(update).filter(entry => {
      // Removing an entry nobody has is a no-op that y-protocols would still remember.
      if (entry.state === null && !this.awareness.states.has(entry.clientId)) return false
      const owner = this.awarenessOwners.get(entry.clientId)
      return owner === undefined || owner === client || (client === null && !this.peers.has(owner))
    })
    let entries = this.awareness.states.size
    for (const entry of allowed) {
      if (entry.state === null) {
        if (this.awarenessOwners.get(entry.clientId) === client) this.awarenessOwners.delete(entry.clientId)
        continue
      }
      if (client?.user !== undefined && typeof entry.state === 'object') entry.state = { ...entry.state, sub: client.user }
      if (JSON.stringify(entry.state).length > this.limits.maxAwarenessStateBytes) {
        throw new LimitError(CloseCode.policyViolation, `awareness state larger than ${this.limits.maxAwarenessStateBytes} bytes`)
      }
      if (!this.awareness.states.has(entry.clientId) && ++entries > this.limits.maxAwarenessEntries) {
        throw new LimitError(CloseCode.policyViolation, `document ${this.docId} would have more than ${this.limits.maxAwarenessEntries} awareness entries`)
      }
      if (client !== null) this.awarenessOwners.set(entry.clientId, client)
    }
    if (allowed.length === 0) return
    applyAwarenessUpdate(this.awareness, encodeAwarenessEntries(allowed), peer)
    this.forgetRemoved(allowed.filter(entry => entry.state === null).map(entry => entry.clientId))
  }

  /** Drops the bookkeeping y-protocols keeps for removed clients, so it cannot grow without bound. */
  private forgetRemoved (clients: number[]): void {
    for (const id of clients) {
      if (!this.awareness.states.has(id)) this.awareness.meta.delete(id)
    }
  }

  /** Every known awareness state as one awareness update, or `null` if there is none. */
  awarenessStates (): Uint8Array | null {
    const clients = [...this.awareness.getStates().keys()]
    return clients.length === 0 ? null : encodeAwarenessUpdate(this.awareness, clients)
  }

  /** Releases the Y.Doc and the awareness; the stored state is untouched. */
  destroy (): void {
    this.ydoc.off('update', this.onDocUpdate)
    this.awareness.off('update', this.onAwarenessUpdate)
    this.awareness.destroy()
    this.ydoc.destroy()
  }

  private write (update: Uint8Array): void {
    this.persisted.write(update).catch((error: unknown) => {
      this.log.error({ err: error, doc: this.docId }, 'failed to store an update')
    })
  }

  private broadcast (encode: (codec: PeerCodec) => Uint8Array, except: unknown = null): void {
    const encoded = new Map<PeerCodec, Uint8Array>()
    for (const peer of this.peers) {
      if (peer === except) continue
      let message = encoded.get(peer.codec)
      if (message === undefined) {
        message = encode(peer.codec)
        encoded.set(peer.codec, message)
      }
      peer.send(message)
    }
  }

  // A Yjs listener that throws stops the Y.Doc from emitting further updates: never throw.
  private readonly onDocUpdate = (update: Uint8Array, origin: unknown): void => {
    if (origin === STORAGE_ORIGIN) return
    try {
      this.write(update)
    } catch (error) {
      this.log.error({ err: error, doc: this.docId }, 'failed to store an update')
    }
    // An update that integrated earlier pending structs carries others' work: it has no single sender.
    if (this.outgoing.push({ update, sender: this.unblocking ? null : origin }) === 1) setImmediate(this.flushOutgoing)
  }

  /**
   * Broadcasts this turn's updates, merged, to every peer. When one peer sent them all it
   * is skipped; otherwise senders get the echo too (clients apply it as a no-op), which is
   * cheaper and simpler than a tailored message per sender.
   */
  private readonly flushOutgoing = (): void => {
    const batch = this.outgoing
    this.outgoing = []
    if (this.peers.size === 0 || this.ydoc.isDestroyed) return
    const sender = batch.every(entry => entry.sender === batch[0]!.sender) ? batch[0]!.sender : null
    // Yjs merges many updates in superlinear time: merge them in small groups.
    for (let i = 0; i < batch.length; i += MAX_MERGED_UPDATES) {
      const group = batch.slice(i, i + MAX_MERGED_UPDATES)
      const merged = group.length === 1 ? group[0]!.update : Y.mergeUpdates(group.map(entry => entry.update))
      this.broadcast(codec => codec.update(this.docId, merged), sender)
    }
  }

  private readonly onAwarenessUpdate = ({ added, updated, removed }: { added: number[], updated: number[], removed: number[] }): void => {
    const update = encodeAwarenessUpdate(this.awareness, [...added, ...updated, ...removed])
    this.broadcast(codec => codec.awareness(this.docId, update))
  }
}
