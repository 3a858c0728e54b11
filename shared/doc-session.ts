/**
 * The client side of one document on one connection: the open / sync handshake, live
 * updates in both directions, acknowledgements and awareness. Transport-agnostic: it
 * sends native messages through a function and is fed the ones addressed to its document.
 *
 * Handshake (see PROTOCOL.md): OPEN with our state vector; the relay answers SYNC with its
 * state vector and what we lack; we apply that, then send everything the relay lacks as
 * one UPDATE carrying our highest local sequence number, which the relay acknowledges once
 * it is durable. Only then do live local updates flow.
 */
import * as Y from 'yjs'
import { applyAwarenessUpdate, encodeAwarenessUpdate, removeAwarenessStates, type Awareness } from 'y-protocols/awareness'
import type { DocId } from './wire/doc-id.js'
import type { NativeMessage } from './wire/native-messages.js'
import { decodeStateVector, validateUpdate } from './validation/update-validation.js'

/** What a session needs from the document it syncs. */
export interface DocSessionHost {
  readonly docId: DocId
  readonly ydoc: Y.Doc
  readonly awareness: Awareness
  /** Highest sequence number given to a local update so far (0 if none). */
  localSeq(): number
  /** Highest local sequence number the relay acknowledged. */
  ackedSeq(): number
  /** Resolves once every update applied so far is in local storage. */
  locallyStored(): Promise<void>
  /** The relay sent its state: the document has completed a sync. */
  onSynced(): void
  /** The relay acknowledged local updates up to `seq`. */
  onAck(seq: number): void
  /** The relay refused the document. */
  onRefused(code: number, reason: string): void
}

/** Messages a session receives: those addressed to one document. */
export type DocSessionMessage = Extract<NativeMessage, { type: 'sync' | 'update' | 'ack' | 'awareness' | 'doc-error' }>

/** Sends one native message on the session's connection. */
export type SendNative = (message: NativeMessage) => void

/** One document's sync over one connection; see the module comment. */
export class DocSession {
  private state: 'idle' | 'opening' | 'handing-over' | 'live' | 'stopped' = 'idle'

  constructor (private readonly host: DocSessionHost, private readonly send: SendNative) {}

  /** Whether local updates are being sent live. */
  get live (): boolean {
    return this.state === 'live'
  }

  /** Opens the document on the connection. */
  start (): void {
    if (this.state !== 'idle') return
    this.state = 'opening'
    this.send({ type: 'open', docId: this.host.docId, stateVector: Y.encodeStateVector(this.host.ydoc) })
  }

  /**
   * Handles a message for this document. Throws (a ProtocolError) if the relay sent a
   * malformed update; the caller should then drop the connection.
   */
  receive (message: DocSessionMessage): void {
    if (this.state === 'stopped' || this.state === 'idle') return
    switch (message.type) {
      case 'sync': {
        if (this.state !== 'opening') return
        const relayState = decodeStateVector(message.stateVector)
        this.applyRemote(message.update)
        this.state = 'handing-over'
        this.host.onSynced()
        void this.handOver(message.stateVector, relayState)
        break
      }
      case 'update':
        this.applyRemote(message.update)
        break
      case 'ack':
        this.host.onAck(message.seq)
        break
      case 'awareness':
        applyAwarenessUpdate(this.host.awareness, message.update, this)
        break
      case 'doc-error':
        this.state = 'stopped'
        this.host.onRefused(message.code, message.reason)
        break
    }
  }

  /** Sends a local update that is now in local storage, if the session is live. */
  sendLocal (seq: number, update: Uint8Array): void {
    if (this.state === 'live') this.send({ type: 'update', docId: this.host.docId, seq, update })
  }

  /** Sends an awareness update, if the session is live. */
  sendAwareness (update: Uint8Array): void {
    if (this.state === 'live') this.send({ type: 'awareness', docId: this.host.docId, update })
  }

  /**
   * Ends the session: the connection was lost (`closeOnRelay` false) or the document is
   * being closed (`closeOnRelay` true). Remote awareness states are dropped.
   */
  stop (closeOnRelay: boolean): void {
    if (this.state === 'stopped') return
    if (closeOnRelay && this.state !== 'idle') this.send({ type: 'close', docId: this.host.docId })
    this.state = 'stopped'
    const awareness = this.host.awareness
    const remote = [...awareness.getStates().keys()].filter(client => client !== awareness.clientID)
    removeAwarenessStates(awareness, remote, this)
  }

  /**
   * Whether this replica has structs the relay lacks. Deletions alone do not count: one
   * without a local sequence number came from elsewhere, and sending the delete set on
   * every handshake would make read-only replicas look like writers.
   */
  private aheadOf (relayState: Map<number, number>): boolean {
    for (const [client, clock] of Y.decodeStateVector(Y.encodeStateVector(this.host.ydoc))) {
      if (clock > (relayState.get(client) ?? 0)) return true
    }
    return false
  }

  private applyRemote (update: Uint8Array): void {
    validateUpdate(update)
    Y.applyUpdate(this.host.ydoc, update, this)
  }

  /** Sends what the relay lacks once it is in local storage, then goes live. */
  private async handOver (relayStateVector: Uint8Array, relayState: Map<number, number>): Promise<void> {
    // Nothing leaves before it is stored locally; loop until no update slipped in meanwhile.
    let seq: number
    try {
      do {
        seq = this.host.localSeq()
        await this.host.locallyStored()
      } while (seq !== this.host.localSeq() && this.state === 'handing-over')
    } catch {
      return // local storage failed: send nothing that is not stored; the host reports the failure
    }
    if (this.state !== 'handing-over') return
    const unacknowledged = seq > this.host.ackedSeq()
    if (unacknowledged || this.aheadOf(relayState)) {
      const missing = Y.encodeStateAsUpdate(this.host.ydoc, relayStateVector)
      this.send({ type: 'update', docId: this.host.docId, seq: unacknowledged ? seq : 0, update: missing })
    }
    this.state = 'live'
    const awareness = this.host.awareness
    if (awareness.getLocalState() !== null) this.sendAwareness(encodeAwarenessUpdate(awareness, [awareness.clientID]))
  }
}
