/**
 * One loaded document on a relay: its Y.Doc, its awareness, its stored log, and the peers
 * connected to it. Updates are validated before they are applied, stored once, and
 * forwarded to every other peer; awareness changes go to every peer.
 */
import type { Logger } from 'pino'
import * as Y from 'yjs'
import { Awareness, applyAwarenessUpdate, encodeAwarenessUpdate, removeAwarenessStates } from 'y-protocols/awareness'
import type { DocId } from '../shared/doc-id.js'
import { PersistedDoc } from '../shared/persisted-doc.js'
import type { DocStore } from '../shared/store.js'
import { decodeAwarenessUpdate, decodeStateVector, validateUpdate } from '../shared/update-validation.js'
import { encodeAwarenessMessage, encodeSyncStep1, encodeSyncStep2, encodeSyncUpdate, type YMessage } from '../shared/y-messages.js'

/** A connection attached to a document. */
export interface DocPeer {
  /** Sends one message (one WebSocket frame). Must not throw. */
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

  /** Number of attached peers. */
  get peerCount (): number {
    return this.peers.size
  }

  /** Attaches `peer` and starts the sync: the relay's step 1, then the known awareness states. */
  addPeer (peer: DocPeer): void {
    this.peers.set(peer, new Set())
    peer.send(encodeSyncStep1(Y.encodeStateVector(this.ydoc)))
    const clients = [...this.awareness.getStates().keys()]
    if (clients.length > 0) peer.send(encodeAwarenessMessage(encodeAwarenessUpdate(this.awareness, clients)))
  }

  /** Detaches `peer` and removes the awareness entries it introduced. */
  removePeer (peer: DocPeer): void {
    const clients = this.peers.get(peer)
    this.peers.delete(peer)
    if (clients !== undefined && clients.size > 0) removeAwarenessStates(this.awareness, [...clients], peer)
  }

  /**
   * Handles one decoded message from `peer`. Throws a ProtocolError, before anything is
   * applied, if the payload is malformed.
   */
  receive (peer: DocPeer, message: YMessage): void {
    switch (message.type) {
      case 'sync-step1':
        decodeStateVector(message.stateVector)
        peer.send(encodeSyncStep2(Y.encodeStateAsUpdate(this.ydoc, message.stateVector)))
        break
      case 'sync-step2':
      case 'sync-update':
        validateUpdate(message.update)
        Y.applyUpdate(this.ydoc, message.update, peer)
        break
      case 'awareness':
        this.receiveAwareness(peer, message.update)
        break
      case 'query-awareness':
        peer.send(encodeAwarenessMessage(encodeAwarenessUpdate(this.awareness, [...this.awareness.getStates().keys()])))
        break
      case 'auth-denied':
        // Only servers send this; a client has no business doing so. Ignore it.
        break
    }
  }

  /** Releases the Y.Doc and the awareness; the stored state is untouched. */
  destroy (): void {
    this.ydoc.off('update', this.onDocUpdate)
    this.awareness.off('update', this.onAwarenessUpdate)
    this.awareness.destroy()
    this.ydoc.destroy()
  }

  private receiveAwareness (peer: DocPeer, update: Uint8Array): void {
    const entries = decodeAwarenessUpdate(update)
    const introduced = this.peers.get(peer)
    for (const { clientId, state } of entries) {
      if (state === null) introduced?.delete(clientId)
      else introduced?.add(clientId)
    }
    applyAwarenessUpdate(this.awareness, update, peer)
  }

  // A Yjs listener that throws stops the Y.Doc from emitting further updates: never throw.
  private readonly onDocUpdate = (update: Uint8Array, origin: unknown): void => {
    if (origin === STORAGE_ORIGIN) return
    this.persisted.write(update).catch((error: unknown) => {
      this.log.error({ err: error, doc: this.docId }, 'failed to store an update')
    })
    let message: Uint8Array | null = null
    for (const peer of this.peers.keys()) {
      if (peer === origin) continue
      message ??= encodeSyncUpdate(update)
      peer.send(message)
    }
  }

  private readonly onAwarenessUpdate = ({ added, updated, removed }: { added: number[], updated: number[], removed: number[] }): void => {
    const changed = [...added, ...updated, ...removed]
    const message = encodeAwarenessMessage(encodeAwarenessUpdate(this.awareness, changed))
    for (const peer of this.peers.keys()) peer.send(message)
  }
}
