/**
 * One loaded document on a relay: its Y.Doc, its awareness, its stored log, and the peers
 * connected to it, whatever protocol they speak. Updates are validated before they are
 * applied, stored once, and forwarded to every other peer; awareness changes go to every
 * peer. A broadcast is encoded once per protocol, not once per peer.
 */
import type { Logger } from 'pino'
import * as Y from 'yjs'
import { Awareness, applyAwarenessUpdate, encodeAwarenessUpdate, removeAwarenessStates } from 'y-protocols/awareness'
import type { DocId } from '../shared/doc-id.js'
import { PersistedDoc } from '../shared/persisted-doc.js'
import type { DocStore } from '../shared/store.js'
import { decodeAwarenessUpdate, decodeStateVector, validateUpdate } from '../shared/update-validation.js'

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
}

/** Transaction origin of the stored state applied while loading. */
const STORAGE_ORIGIN = Symbol('storage')

/** Options for loading a {@link RelayDocument}. */
export interface RelayDocumentOptions {
  store: DocStore
  log: Logger
  compactMinBytes?: number
}

/** A document held in memory by a relay; see the module comment. */
export class RelayDocument {
  readonly awareness: Awareness
  private readonly peers = new Map<DocPeer, Set<number>>()

  private constructor (readonly docId: DocId, private readonly persisted: PersistedDoc, private readonly log: Logger) {
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
      return new RelayDocument(docId, persisted, options.log)
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
    this.peers.set(peer, new Set())
  }

  /** Detaches `peer` and removes the awareness entries it introduced. */
  removePeer (peer: DocPeer): void {
    const clients = this.peers.get(peer)
    this.peers.delete(peer)
    if (clients !== undefined && clients.size > 0) removeAwarenessStates(this.awareness, [...clients], peer)
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
    const store = this.ydoc.store
    const pendingBefore = [store.pendingStructs, store.pendingDs]
    Y.applyUpdate(this.ydoc, update, origin)
    if ((store.pendingStructs !== null && store.pendingStructs !== pendingBefore[0]) || (store.pendingDs !== null && store.pendingDs !== pendingBefore[1])) {
      // Parts still waiting for their dependencies emit no update event; store the update
      // as received so that what is acknowledged is on disk.
      this.write(update)
    }
    return this.persisted.settled()
  }

  /**
   * Validates and applies an awareness update from `peer` (an attached peer, or another
   * origin such as a relay link), remembering the clients an attached peer introduced.
   */
  applyAwareness (peer: object, update: Uint8Array): void {
    const entries = decodeAwarenessUpdate(update)
    const introduced = this.peers.get(peer as DocPeer)
    for (const { clientId, state } of entries) {
      if (state === null) introduced?.delete(clientId)
      else introduced?.add(clientId)
    }
    applyAwarenessUpdate(this.awareness, update, peer)
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

  private broadcast (encode: (codec: PeerCodec) => Uint8Array, except: unknown): void {
    const encoded = new Map<PeerCodec, Uint8Array>()
    for (const peer of this.peers.keys()) {
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
    this.write(update)
    this.broadcast(codec => codec.update(this.docId, update), origin)
  }

  private readonly onAwarenessUpdate = ({ added, updated, removed }: { added: number[], updated: number[], removed: number[] }): void => {
    const update = encodeAwarenessUpdate(this.awareness, [...added, ...updated, ...removed])
    this.broadcast(codec => codec.awareness(this.docId, update), null)
  }
}
