/**
 * One loaded document on a relay: its stored updates, its presence, and the peers
 * connected to it, whatever protocol they speak. Updates are validated, dropped if the
 * document already has them, stored once and forwarded to every other peer; the relay
 * never integrates them into a Y.Doc (see {@link StoredDocument}). Updates that arrive
 * together (the frames of one socket read) are merged and broadcast as one message to
 * every peer, encoded once per protocol, not once per peer: fewer, larger frames are what
 * lets many readers keep up with a fast writer. The broadcast goes out before the next
 * commit, which would otherwise add an fsync to every round trip between peers.
 */
import type { Logger } from 'pino'
import type { DocId } from '../../shared/wire/doc-id.js'
import type { DocLogOptions } from '../../shared/storage/doc-log.js'
import type { DocStore } from '../../shared/storage/store.js'
import { decodeAwarenessUpdate, encodeAwarenessEntries } from '../../shared/validation/update-validation.js'
import type { UpdateShape } from '../../shared/validation/update-shape.js'
import { CloseCode } from '../../shared/wire/close-codes.js'
import { DEFAULT_LIMITS, LimitError, type Limits } from '../connections/limits.js'
import { RelayAwareness } from './relay-awareness.js'
import { StoredDocument, mergeInGroups } from './stored-document.js'

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

/** Told of every new update and awareness change of a document, with where it came from. */
export interface DocObserver {
  update(update: Uint8Array, origin: object): void
  awareness(update: Uint8Array, origin: object | null): void
}

/** Options for loading a {@link RelayDocument}. */
export interface RelayDocumentOptions extends DocLogOptions {
  store: DocStore
  log: Logger
  /** Document size, client, pending-update and awareness limits. Default {@link DEFAULT_LIMITS}. */
  limits?: Pick<Limits, 'maxDocumentBytes' | 'maxClientsPerDocument' | 'maxPendingBytes' | 'maxAwarenessEntries' | 'maxAwarenessStateBytes'>
}

/** A document held in memory by a relay; see the module comment. */
export class RelayDocument {
  private readonly peers = new Set<DocPeer>()
  private readonly awareness = new RelayAwareness(update => this.awarenessChanged(update, null))
  private observers: DocObserver[] = []
  /** Updates stored and not yet broadcast, with the origin of each. */
  private outgoing: Array<{ update: Uint8Array, origin: object }> = []
  private destroyed = false

  private constructor (
    readonly docId: DocId,
    private readonly stored: StoredDocument,
    private readonly log: Logger,
    private readonly limits: NonNullable<RelayDocumentOptions['limits']>
  ) {}

  /** Loads `docId` from the store. Rejects (storing nothing) if the stored data is unreadable. */
  static async load (docId: DocId, options: RelayDocumentOptions): Promise<RelayDocument> {
    const limits = options.limits ?? DEFAULT_LIMITS
    const stored = await StoredDocument.load(options.store, docId, { ...options, maxClients: limits.maxClientsPerDocument })
    return new RelayDocument(docId, stored, options.log, limits)
  }

  /** Attaches `peer`: it receives every later update and awareness change. */
  addPeer (peer: DocPeer): void {
    this.peers.add(peer)
  }

  /** Detaches `peer` and removes the awareness entries it introduced. */
  removePeer (peer: DocPeer): void {
    this.peers.delete(peer)
    const removed = this.awareness.removeOwnedBy(peer)
    if (removed.length > 0) this.awarenessChanged(encodeAwarenessEntries(removed), peer)
  }

  /** Tells `observer` of every later update and awareness change; returns the way to stop. */
  observe (observer: DocObserver): () => void {
    this.observers = [...this.observers, observer]
    return () => { this.observers = this.observers.filter(other => other !== observer) }
  }

  /** The document's state vector. */
  stateVector (): Uint8Array {
    return this.stored.stateVector()
  }

  /** What a peer with `stateVector` lacks. Throws a ProtocolError if the state vector is malformed. */
  missingFor (stateVector: Uint8Array): Uint8Array {
    return this.stored.missingFor(stateVector)
  }

  /**
   * Validates and stores an update from `origin`. Throws a ProtocolError, having stored
   * nothing, if it is malformed or does not fit the document, or a LimitError if it breaks a
   * limit; otherwise returns a promise that resolves once the update is durable (committed
   * to the store, whether by this write or an earlier one). What is stored and forwarded is
   * the update in its normalised form (see update-shape.ts).
   */
  applyUpdate (update: Uint8Array, origin: object): Promise<void> {
    const prepared = this.stored.prepare(update)
    if (prepared === null) return this.stored.settled()
    const { shape } = prepared
    const { logBytes, snapshotBytes } = this.stored.sizes
    if (logBytes + snapshotBytes + shape.bytes.length > this.limits.maxDocumentBytes) {
      throw new LimitError(CloseCode.messageTooBig, `document ${this.docId} would exceed ${this.limits.maxDocumentBytes} bytes`)
    }
    this.checkPending(shape)
    this.stored.append(prepared).catch((error: unknown) => {
      this.log.error({ err: error, doc: this.docId }, 'failed to store an update')
    })
    for (const observer of this.observers) observer.update(shape.bytes, origin)
    if (this.outgoing.push({ update: shape.bytes, origin }) === 1) queueMicrotask(this.flushOutgoing)
    // What was taken is stored; the sender is cut off from adding more that cannot integrate.
    this.checkPending(shape)
    return this.stored.settled()
  }

  /**
   * Throws a LimitError if too many stored bytes wait for missing dependencies and `shape`
   * would wait too: the update that fills the gap, and others' work, still get in.
   */
  private checkPending (shape: UpdateShape): void {
    if (this.stored.pendingBytes > this.limits.maxPendingBytes && this.stored.waits(shape)) {
      throw new LimitError(CloseCode.policyViolation, `more than ${this.limits.maxPendingBytes} bytes of updates wait for missing dependencies`)
    }
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
      // Removing an entry nobody has is a no-op.
      if (entry.state === null && !this.awareness.has(entry.clientId)) return false
      const owner = this.awareness.ownerOf(entry.clientId)
      return owner === undefined || owner === null || owner === client || (client === null && !this.peers.has(owner as DocPeer))
    })
    let entries = this.awareness.size
    for (const entry of allowed) {
      if (entry.state === null) continue
      if (client?.user !== undefined && typeof entry.state === 'object' && !Array.isArray(entry.state)) entry.state = { ...entry.state, sub: client.user }
      if (JSON.stringify(entry.state).length > this.limits.maxAwarenessStateBytes) {
        throw new LimitError(CloseCode.policyViolation, `awareness state larger than ${this.limits.maxAwarenessStateBytes} bytes`)
      }
      if (!this.awareness.has(entry.clientId) && ++entries > this.limits.maxAwarenessEntries) {
        throw new LimitError(CloseCode.policyViolation, `document ${this.docId} would have more than ${this.limits.maxAwarenessEntries} awareness entries`)
      }
    }
    const applied = this.awareness.apply(allowed, client)
    if (applied.length > 0) this.awarenessChanged(encodeAwarenessEntries(applied), peer)
  }

  /** Every known awareness state as one awareness update, or `null` if there is none. */
  awarenessStates (): Uint8Array | null {
    return this.awareness.encodeAll()
  }

  /** Releases the document's memory; the stored state is untouched. */
  destroy (): void {
    this.destroyed = true
    this.awareness.destroy()
    this.observers = []
  }

  private awarenessChanged (update: Uint8Array, origin: object | null): void {
    for (const observer of this.observers) observer.awareness(update, origin)
    this.broadcast(codec => codec.awareness(this.docId, update))
  }

  private broadcast (encode: (codec: PeerCodec) => Uint8Array, peers: Iterable<DocPeer> = this.peers): void {
    const encoded = new Map<PeerCodec, Uint8Array>()
    for (const peer of peers) {
      let message = encoded.get(peer.codec)
      if (message === undefined) {
        message = encode(peer.codec)
        encoded.set(peer.codec, message)
      }
      peer.send(message)
    }
  }

  /**
   * Broadcasts the updates stored since the last broadcast, merged (in groups, see
   * {@link mergeInGroups}), to every peer. When one peer sent them all it is skipped;
   * otherwise senders get the echo too (clients apply it as a no-op), which is cheaper and
   * simpler than a tailored message per sender.
   */
  private readonly flushOutgoing = (): void => {
    const batch = this.outgoing
    this.outgoing = []
    if (this.destroyed) return
    const sender = batch.every(entry => entry.origin === batch[0]!.origin) ? batch[0]!.origin : null
    const recipients = [...this.peers].filter(peer => peer !== sender)
    if (recipients.length === 0) return
    for (const merged of mergeInGroups(batch.map(entry => entry.update))) {
      this.broadcast(codec => codec.update(this.docId, merged), recipients)
    }
  }
}
