/**
 * Replication of documents between the relays that replicate them.
 *
 * - Every new update stored for a loaded document is forwarded as received, with a
 *   sequence number, to the document's other replicas (never back to the relay it came
 *   from; a replica that already has it drops it, so forwarding stops there); the receiver
 *   acknowledges the number once the update is committed.
 * - Anti-entropy: when a document loads, and when a link to a peer comes back, the relay
 *   exchanges state vectors with the peer in both directions for every document the peer
 *   may lack (OPEN → SYNC → UPDATE, the same handshake native clients use).
 * - Quorum: {@link Replicator.confirm} resolves once W-1 other replicas have acknowledged
 *   everything this relay sent them for the document, so with this relay's own commit an
 *   update is on W disks before a client hears of it.
 */
import type { Logger } from 'pino'
import { CloseCode } from '../../shared/wire/close-codes.js'
import type { DocId } from '../../shared/wire/doc-id.js'
import type { NativeMessage } from '../../shared/wire/native-messages.js'
import type { Cluster } from './cluster.js'
import type { PeerLinks } from './peer-links.js'
import type { DocumentRegistry } from '../documents/registry.js'
import type { RelayDocument } from '../documents/relay-document.js'

/** How long a peer may take to answer a handshake step before it is retried later. */
const HANDSHAKE_DEADLINE_MS = 10_000

function withDeadline<T> (promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const deadline = new Promise<T>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), HANDSHAKE_DEADLINE_MS) })
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer))
}

/** Transaction origin of updates applied from a peer relay. */
export class PeerOrigin {
  constructor (readonly relayId: string) {}
}

/** What this relay knows about one peer's copy of one document. */
interface PeerDocState {
  /** Highest sequence number sent to the peer for the document. */
  sent: number
  /** Highest of those the peer acknowledged. */
  acked: number
  /** The peer may lack updates that were never sent (link down): a handshake is due. */
  dirty: boolean
  /** A handshake is in progress: resolves once the peer acknowledged it. */
  handshake: Promise<void> | null
}

interface QuorumWaiter {
  /** Per peer, the sequence number to be acknowledged, or null while a handshake is due. */
  targets: Map<string, number | null>
  resolve: () => void
}

interface PendingSync {
  resolve: (message: Extract<NativeMessage, { type: 'sync' }>) => void
  reject: (error: Error) => void
}

/** See the module comment. */
export class Replicator {
  private readonly states = new Map<string, Map<DocId, PeerDocState>>()
  private readonly waiters = new Map<DocId, QuorumWaiter[]>()
  private readonly pendingSyncs = new Map<string, PendingSync>()
  /** Handshakes waiting for their acknowledgement, by peer and sequence number. */
  private readonly acks = new Map<string, { docId: DocId, resolve: () => void, reject: (error: Error) => void }>()
  private readonly origins = new Map<string, PeerOrigin>()
  private readonly detachers = new Map<RelayDocument, () => void>()
  private nextSeq = 1
  links!: PeerLinks

  constructor (private readonly cluster: Cluster, private readonly registry: DocumentRegistry, private readonly log: Logger) {
    for (const peer of cluster.peers) {
      this.states.set(peer.id, new Map())
      this.origins.set(peer.id, new PeerOrigin(peer.id))
    }
  }

  /** Starts replicating a document that just loaded: forward its updates, and sync it with its other replicas. */
  attach (doc: RelayDocument): void {
    const stop = doc.observe({
      update: (update, origin) => this.forward(doc.docId, update, origin),
      awareness: (update, origin) => {
        for (const peer of this.cluster.otherReplicas(doc.docId)) {
          if (!(origin instanceof PeerOrigin && origin.relayId === peer.id)) this.links.send(peer.id, { type: 'awareness', docId: doc.docId, update })
        }
      }
    })
    this.detachers.set(doc, stop)
    for (const peer of this.cluster.otherReplicas(doc.docId)) {
      this.state(peer.id, doc.docId).dirty = true
      void this.handshake(peer.id, doc.docId).catch(() => {})
    }
  }

  /** Stops listening to an evicted document; keeps its replication state only where a peer is behind. */
  detach (doc: RelayDocument): void {
    this.detachers.get(doc)?.()
    this.detachers.delete(doc)
    for (const states of this.states.values()) {
      const state = states.get(doc.docId)
      if (state !== undefined && !state.dirty && state.handshake === null && state.acked >= state.sent) states.delete(doc.docId)
    }
  }

  /** Resolves once W-1 other replicas acknowledged everything sent to them so far for `docId`. */
  confirm (docId: DocId): Promise<void> {
    const needed = this.cluster.writeQuorum - 1
    if (needed <= 0) return Promise.resolve()
    const targets = new Map<string, number | null>()
    for (const peer of this.cluster.otherReplicas(docId)) {
      const state = this.state(peer.id, docId)
      targets.set(peer.id, state.dirty || !this.links.isUp(peer.id) ? null : state.sent)
    }
    return new Promise(resolve => {
      const waiter = { targets, resolve }
      if (!this.settle(docId, waiter)) this.waitersOf(docId).push(waiter)
    })
  }

  /**
   * Makes sure `peerId` holds everything this relay has of `docId`: a state-vector
   * exchange in both directions. Resolves once the peer acknowledged what it lacked.
   */
  handshake (peerId: string, docId: DocId): Promise<void> {
    const state = this.state(peerId, docId)
    state.handshake ??= this.registry.with(docId, async doc => {
      const sync = await this.requestSync(peerId, docId, doc.stateVector())
      doc.applyUpdate(sync.update, this.origin(peerId))
      const seq = this.nextSeq++
      const acked = withDeadline(new Promise<void>((resolve, reject) => this.acks.set(`${peerId}\u0000${seq}`, { docId, resolve, reject })), `${peerId} to acknowledge ${docId}`)
      if (!this.links.send(peerId, { type: 'update', docId, seq, update: doc.missingFor(sync.stateVector) })) throw new Error('link down')
      state.sent = seq
      state.dirty = false
      for (const waiter of this.waiters.get(docId) ?? []) {
        if (waiter.targets.get(peerId) === null) waiter.targets.set(peerId, seq)
      }
      await acked
    }).finally(() => { state.handshake = null })
    return state.handshake
  }

  /** A link to `peerId` came up: catch it up on every document it may lack. */
  onPeerUp (peerId: string): void {
    for (const [docId, state] of this.states.get(peerId) ?? []) {
      if (state.dirty || state.sent > state.acked || this.registry.peek(docId) !== null) {
        state.dirty = true
        void this.handshake(peerId, docId).catch(() => {})
      }
    }
  }

  /** The link to `peerId` went down: what it did not acknowledge needs a handshake later. */
  onPeerDown (peerId: string): void {
    for (const state of this.states.get(peerId)?.values() ?? []) {
      if (state.sent > state.acked) state.dirty = true
    }
    for (const pending of [this.pendingSyncs, this.acks]) {
      for (const [key, { reject }] of pending) {
        if (!key.startsWith(`${peerId}\u0000`)) continue
        pending.delete(key)
        reject(new Error(`link to ${peerId} went down`))
      }
    }
  }

  /** Handles a message from a peer relay. */
  onMessage (peerId: string, message: NativeMessage): void {
    switch (message.type) {
      case 'open':
        void this.registry.with(message.docId, doc => {
          this.links.send(peerId, { type: 'sync', docId: message.docId, stateVector: doc.stateVector(), update: doc.missingFor(message.stateVector) })
          const awareness = doc.awarenessStates()
          if (awareness !== null) this.links.send(peerId, { type: 'awareness', docId: message.docId, update: awareness })
        }).catch(error => this.refuse(peerId, message.docId, error, 'could not answer a peer\'s open'))
        break
      case 'sync': {
        const key = `${peerId}\u0000${message.docId}`
        this.pendingSyncs.get(key)?.resolve(message)
        this.pendingSyncs.delete(key)
        break
      }
      case 'update':
        void this.registry.with(message.docId, doc => doc.applyUpdate(message.update, this.origin(peerId)))
          .then(() => { if (message.seq > 0) this.links.send(peerId, { type: 'ack', docId: message.docId, seq: message.seq }) })
          .catch(error => this.refuse(peerId, message.docId, error, 'could not apply a peer\'s update'))
        break
      case 'ack': {
        const state = this.state(peerId, message.docId)
        state.acked = Math.max(state.acked, message.seq)
        const key = `${peerId}\u0000${message.seq}`
        this.acks.get(key)?.resolve()
        this.acks.delete(key)
        this.settleAll(message.docId)
        break
      }
      case 'awareness':
        try {
          this.registry.peek(message.docId)?.applyAwareness(this.origin(peerId), message.update)
        } catch (error) {
          // Presence over a limit is dropped; it must not cost the link.
          this.log.warn({ err: error, doc: message.docId, peer: peerId }, 'dropped a peer\'s awareness update')
        }
        break
      case 'doc-error':
        // The peer did not store something sent to it: a later ack must not count for it. It
        // is caught up by a handshake when its link or the document comes back.
        this.state(peerId, message.docId).dirty = true
        for (const waiter of this.waiters.get(message.docId) ?? []) {
          if (waiter.targets.has(peerId)) waiter.targets.set(peerId, null)
        }
        this.failHandshakes(peerId, message.docId, new Error(`${peerId} refused ${message.docId}: ${message.reason}`))
        break
      default:
        this.log.warn({ peer: peerId, type: message.type }, 'unexpected message on a relay link')
    }
  }

  /** Tells `peerId` that this relay could not handle its message for `docId`, so its handshake fails fast. */
  private refuse (peerId: string, docId: DocId, error: unknown, what: string): void {
    this.log.warn({ err: error, doc: docId, peer: peerId }, what)
    this.links.send(peerId, { type: 'doc-error', docId, code: CloseCode.documentUnavailable, reason: (error as Error).message })
  }

  private failHandshakes (peerId: string, docId: DocId, error: Error): void {
    const pending = this.pendingSyncs.get(`${peerId}\u0000${docId}`)
    this.pendingSyncs.delete(`${peerId}\u0000${docId}`)
    pending?.reject(error)
    for (const [key, ack] of this.acks) {
      if (!key.startsWith(`${peerId}\u0000`) || ack.docId !== docId) continue
      this.acks.delete(key)
      ack.reject(error)
    }
  }

  private forward (docId: DocId, update: Uint8Array, origin: unknown): void {
    for (const peer of this.cluster.otherReplicas(docId)) {
      if (origin instanceof PeerOrigin && origin.relayId === peer.id) continue
      const state = this.state(peer.id, docId)
      // A due handshake will carry it (it sends what the peer lacks when it runs).
      if (state.dirty) continue
      const seq = this.nextSeq++
      if (this.links.send(peer.id, { type: 'update', docId, seq, update })) state.sent = seq
      else state.dirty = true
    }
  }

  private requestSync (peerId: string, docId: DocId, stateVector: Uint8Array): Promise<Extract<NativeMessage, { type: 'sync' }>> {
    return withDeadline(new Promise((resolve, reject) => {
      const key = `${peerId}\u0000${docId}`
      this.pendingSyncs.get(key)?.reject(new Error('superseded'))
      this.pendingSyncs.set(key, { resolve, reject })
      if (!this.links.send(peerId, { type: 'open', docId, stateVector })) {
        this.pendingSyncs.delete(key)
        reject(new Error(`link to ${peerId} is down`))
      }
    }), `${peerId} to answer open ${docId}`)
  }

  private settle (docId: DocId, waiter: QuorumWaiter): boolean {
    let confirmed = 0
    for (const [peerId, target] of waiter.targets) {
      if (target !== null && this.state(peerId, docId).acked >= target) confirmed++
    }
    if (confirmed < this.cluster.writeQuorum - 1) return false
    waiter.resolve()
    return true
  }

  private settleAll (docId: DocId): void {
    const waiters = this.waiters.get(docId)
    if (waiters === undefined) return
    const remaining = waiters.filter(waiter => !this.settle(docId, waiter))
    if (remaining.length === 0) this.waiters.delete(docId)
    else this.waiters.set(docId, remaining)
  }

  private waitersOf (docId: DocId): QuorumWaiter[] {
    let waiters = this.waiters.get(docId)
    if (waiters === undefined) {
      waiters = []
      this.waiters.set(docId, waiters)
    }
    return waiters
  }

  private state (peerId: string, docId: DocId): PeerDocState {
    const states = this.states.get(peerId)!
    let state = states.get(docId)
    if (state === undefined) {
      state = { sent: 0, acked: 0, dirty: false, handshake: null }
      states.set(docId, state)
    }
    return state
  }

  private origin (peerId: string): PeerOrigin {
    return this.origins.get(peerId)!
  }
}
