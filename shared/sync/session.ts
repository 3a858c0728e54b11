/**
 * One document synced with one peer, in both roles of the handshake:
 *
 *   opener                                  answerer
 *     open(sv_o)                ───────►     (waits until its document may be shared)
 *                               ◄───────     sync(sv_a, what sv_o lacks)    answerer is live
 *     applies it: "synced"
 *     update(seq, what sv_a lacks) ─────►    applies it, acks seq once durable
 *     opener is live
 *
 * Either side may open, and a side that opened still answers the other's `open`: relays
 * open documents on each other, a relay asks a stock client for its state while answering
 * the client's own request, and so on. Once live, a session forwards every update and
 * presence change of its host to the peer. Updates to a peer that acknowledges carry a
 * sequence number of this session (1, 2, 3, ...); the peer acknowledges, cumulatively and
 * once per turn, the highest number it holds durably. The session maps acknowledgements
 * back to the host's local changes, which is how a replica learns what a relay made durable.
 * Messages that arrive before the host is bound (it is still loading) wait, in order.
 */
import { AuthError, ProtocolError } from '../errors.js'
import { CloseCode } from '../wire/close-codes.js'
import type { DocId } from '../wire/doc-id.js'
import type { PeerInfo } from '../wire/native-messages.js'
import { nextTurn } from '../turn.js'
import { validateUpdate } from '../validation/update-validation.js'
import type { Framing, SessionInput, SessionOutput } from './framing.js'
import type { FrameCache } from './frames.js'

/** What a session sends the peer after the peer answered its `open`: what the peer lacks. */
export interface HandOver {
  update: Uint8Array
  /** The host's local changes this update includes (see {@link DocumentHost.handOver}). */
  localChanges: number
}

/**
 * The document side of a session: one document as a node holds it, a replica's Y.Doc bound
 * to its local store or a relay's stored updates, with any number of sessions.
 */
export interface DocumentHost {
  readonly docId: DocId
  /** The document's state vector (Yjs encoding). */
  stateVector(): Uint8Array
  /** Everything a peer with `stateVector` lacks, as one update. Throws a ProtocolError if the state vector is malformed. */
  missingFor(stateVector: Uint8Array): Uint8Array
  /**
   * Null if everything applied so far may leave this node now, else a promise that resolves
   * once it may: a replica sends nothing that is not in its local store yet. A relay
   * forwards before it commits, so it is always ready.
   */
  readyToShare(): Promise<void> | null
  /**
   * What to send a peer whose state vector is `peerStateVector`, right after it answered
   * this node's `open`, or null if nothing needs sending. Called once {@link readyToShare}
   * resolved, in the same turn as the send.
   */
  handOver(peerStateVector: Uint8Array, session: SyncSession): HandOver | null
  /**
   * Validates and applies an update from the peer of `from`. Throws (a ProtocolError,
   * LimitError or AuthError), having applied nothing, if it is refused; otherwise returns a
   * promise that resolves once the update is durable on this node (stored locally on a
   * replica; committed, and in a cluster replicated, on a relay) and rejects if it never will be.
   */
  applyUpdate(update: Uint8Array, from: SyncSession): Promise<void>
  /**
   * Whether `update` (already known to be well-formed) holds anything this host lacks. A
   * peer that may only read may still pass on what the host has (peers forward what they
   * receive); only a change is refused.
   */
  changes(update: Uint8Array): boolean
  /** Validates and applies presence from the peer of `from`; throws if it is refused. */
  applyAwareness(update: Uint8Array, from: SyncSession): void
  /** Every presence state the host knows, as one awareness update, or null if there is none. */
  awarenessStates(): Uint8Array | null
  /** `session` is bound to this host: forward to it once it is live. */
  attach(session: SyncSession): void
  /** `session` ended: stop forwarding to it and drop the presence its peer brought. */
  detach(session: SyncSession): void
  /** The peer of `session` answered this node's `open`, and got what it lacked in return: the document completed a sync with it. */
  synced(session: SyncSession): void
  /** The peer of `session` acknowledged every update sent to it up to one that included `localChanges` local changes. */
  acknowledged(session: SyncSession, localChanges: number): void
}

/**
 * Messages a peer may send that have to wait (for a document to load, for a welcome, for
 * an upstream connection); more is a misbehaving peer.
 */
export const MAX_EARLY_MESSAGES = 1024

/** The smallest Yjs update (no structs, empty delete set): what a read-only peer may always send. */
const EMPTY_UPDATE_LENGTH = 2

const EMPTY_AWARENESS = new Uint8Array([0])

/** Bits of a session's `flags` (one field rather than one per flag: a relay holds a session per connection). */
const OPEN_WANTED = 1
const AWAITING_SYNC = 2
const LIVE = 4
const ENDED = 8
const SYNCED = 16

/** Answers at least this large have their frames shared between sessions (see `sendAnswer`). */
const SHARED_FRAME_BYTES = 64 * 1024
/** Frames of large answers, by the answer's bytes (one document's, unchanged) and framing. */
const sharedFrames = new WeakMap<Uint8Array, Map<Framing, Uint8Array>>()

/**
 * Options of {@link SyncSession}. The session calls the callbacks as methods of this object
 * (`options.send(frame)`), so one object of a class may be its options: a relay keeps a
 * session per connection, and one object costs less than a closure per callback.
 */
export interface SessionOptions {
  docId: DocId
  /** Who is on the other end. */
  peer: PeerInfo
  framing: Framing
  /** Sends one frame on the link. Must not throw. */
  send: (frame: Uint8Array) => void
  /** Whether updates to this peer carry sequence numbers to acknowledge. Default: if the framing has acknowledgements. */
  numbered?: boolean
  /** Whether the peer may change the document; its non-empty updates are refused (4403) otherwise. Default: yes. */
  mayWrite?: () => boolean
  /** Counts the bytes of an answer to the peer's request against what the peer may cost (see `Link.charge`). */
  charge?: (bytes: number) => void
  /** Whether the session is live as soon as the host is bound (y-websocket clients get every update from the start). */
  liveOnBind?: boolean
  /** The peer's authenticated user, stamped as `sub` on the presence it sets. */
  user?: string
  /** Handling a message failed (a ProtocolError, LimitError or AuthError): the owner decides what to close. */
  onError: (error: unknown) => void
}

/**
 * A session's sequence numbers and acknowledgements, both ways: created with the first
 * numbered message sent or received, or the first wait for a catch-up (y-websocket sessions
 * never have one).
 */
class Acks {
  /** Highest sequence number sent. */
  sent = 0
  /** Highest sequence number the peer acknowledged. */
  acked = 0
  /** Sent numbers not yet acknowledged, with the host's local changes each included. */
  readonly coverage: Array<{ seq: number, localChanges: number }> = []
  catchUpWaiters: Array<{ seq: number, resolve: () => void, reject: (error: Error) => void }> = []
  /** Resolves once every numbered update received so far is durable; rejects for good once one is not. */
  lastDurable: Promise<void> = Promise.resolve()
  /** The highest received number to acknowledge at the end of this turn; 0 if none is due. */
  due = 0
}

/** See the module comment. */
export class SyncSession {
  private host: DocumentHost | null = null
  /** Messages that arrived before the host was bound (null: none). */
  private waiting: SessionInput[] | null = null
  private flags = 0
  private acks: Acks | null = null

  constructor (readonly options: SessionOptions) {}

  /** Whether updates to the peer carry sequence numbers to acknowledge. */
  private get numbered (): boolean {
    return this.options.numbered ?? this.options.framing.acknowledges
  }

  private get numbering (): Acks {
    this.acks ??= new Acks()
    return this.acks
  }

  private is (flag: number): boolean {
    return (this.flags & flag) !== 0
  }

  private mark (flag: number, on = true): void {
    this.flags = on ? this.flags | flag : this.flags & ~flag
  }

  get docId (): DocId {
    return this.options.docId
  }

  /** Who is on the other end. */
  get peer (): PeerInfo {
    return this.options.peer
  }

  /** The peer's authenticated user, if any. */
  get user (): string | undefined {
    return this.options.user
  }

  /** Whether updates and presence are forwarded to the peer. */
  get live (): boolean {
    return this.is(LIVE)
  }

  /** Whether the peer answered this session's `open` and got what it lacked in return. */
  get synced (): boolean {
    return this.is(SYNCED)
  }

  get ended (): boolean {
    return this.is(ENDED)
  }

  /** Highest sequence number sent; 0 if none. */
  get sentSeq (): number {
    return this.acks?.sent ?? 0
  }

  /** Highest sequence number the peer acknowledged. */
  get ackedSeq (): number {
    return this.acks?.acked ?? 0
  }

  /** Whether this side asked the peer for what it lacks (the opener role). */
  get opener (): boolean {
    return this.is(OPEN_WANTED)
  }

  /** Whether the peer acknowledged every numbered update sent to it. */
  get caughtUp (): boolean {
    return this.ackedSeq >= this.sentSeq
  }

  /** Binds the loaded host: the session starts working, and messages that waited are handled. */
  bind (host: DocumentHost): void {
    if (this.is(ENDED) || this.host !== null) return
    this.host = host
    host.attach(this)
    if (this.is(OPEN_WANTED)) this.sendOpen()
    if (this.options.liveOnBind === true) this.goLive(host)
    const waiting = this.waiting ?? []
    this.waiting = null
    for (const input of waiting) {
      if (this.is(ENDED)) break
      this.handle(input)
    }
  }

  /** Asks the peer for what this node lacks (the opener role); once the host is bound. */
  open (): void {
    if (this.is(ENDED)) return
    this.mark(OPEN_WANTED)
    if (this.host !== null) this.sendOpen()
  }

  /** Handles a message from the peer; errors go to `onError`. */
  receive (input: SessionInput): void {
    if (this.is(ENDED)) return
    if (this.host !== null) return this.handle(input)
    this.waiting ??= []
    if (this.waiting.length >= MAX_EARLY_MESSAGES) return this.options.onError(new ProtocolError('too many messages before the document loaded'))
    this.waiting.push(input)
  }

  /**
   * Resolves once this side's handshake is done and the peer acknowledged everything sent
   * to it until then; rejects if the session ends first. Only for numbered sessions.
   */
  whenCaughtUp (): Promise<void> {
    return new Promise((resolve, reject) => {
      this.numbering.catchUpWaiters.push({ seq: -1, resolve, reject })
      this.settleCatchUp()
    })
  }

  /** Forwards an update of the host (`localChanges`: the host's local changes shared so far). */
  forwardUpdate (update: Uint8Array, localChanges: number, frames: FrameCache): void {
    if (!this.is(LIVE)) return
    if (!this.numbered) {
      this.options.send(frames.get(this.options.framing, () => this.encode({ type: 'update', seq: 0, update })!))
      return
    }
    this.sendNumbered(update, localChanges)
  }

  /** Forwards a presence change of the host. */
  forwardAwareness (update: Uint8Array, frames: FrameCache): void {
    if (this.is(LIVE)) this.options.send(frames.get(this.options.framing, () => this.encode({ type: 'awareness', update })!))
  }

  /** Fails the session with `error` (a host that cannot go on, say): its owner closes or refuses it, as for a bad message. */
  fail (error: unknown): void {
    if (!this.is(ENDED)) this.options.onError(error)
  }

  /** Ends the session; with `tellPeer`, the peer is told the document is closed on this link. */
  end (tellPeer = false): void {
    if (this.is(ENDED)) return
    if (tellPeer) this.output({ type: 'close' })
    this.mark(ENDED)
    this.mark(LIVE, false)
    this.waiting = null
    const waiters = this.acks?.catchUpWaiters.splice(0) ?? []
    const ended = new Error(`session of ${this.docId} with ${this.peer.peerId || 'a client'} ended`)
    for (const waiter of waiters) waiter.reject(ended)
    this.host?.detach(this)
  }

  private handle (input: SessionInput): void {
    try {
      this.dispatch(this.host!, input)
    } catch (error) {
      this.options.onError(error)
    }
  }

  private dispatch (host: DocumentHost, input: SessionInput): void {
    switch (input.type) {
      case 'open':
        return this.answer(host, input.stateVector)
      case 'sync':
        if (!this.is(AWAITING_SYNC)) return this.write(host, input.update, 0) // an unsolicited answer is just an update
        this.mark(AWAITING_SYNC, false)
        this.write(host, input.update, 0)
        return this.afterReady(host, () => {
          if (input.stateVector === null) this.goLive(host)
          else this.handOver(host, input.stateVector)
          this.mark(SYNCED)
          host.synced(this)
          this.settleCatchUp()
        })
      case 'update':
        return this.write(host, input.update, input.seq)
      case 'ack':
        return this.onAck(host, input.seq)
      case 'awareness':
        return host.applyAwareness(input.update, this)
      case 'query-awareness':
        this.output({ type: 'awareness', update: host.awarenessStates() ?? EMPTY_AWARENESS })
    }
  }

  private sendOpen (): void {
    this.mark(AWAITING_SYNC)
    this.output({ type: 'open', stateVector: this.host!.stateVector() })
  }

  /** The answerer role: send what the peer lacks once the host may share it, then go live. */
  private answer (host: DocumentHost, stateVector: Uint8Array): void {
    this.afterReady(host, () => {
      const update = host.missingFor(stateVector)
      this.options.charge?.(update.length)
      this.sendAnswer(host.stateVector(), update)
      this.goLive(host)
    })
  }

  private handOver (host: DocumentHost, peerStateVector: Uint8Array): void {
    const handOver = host.handOver(peerStateVector, this)
    if (handOver !== null) {
      if (this.numbered) this.sendNumbered(handOver.update, handOver.localChanges)
      else this.output({ type: 'update', seq: 0, update: handOver.update })
    }
    this.goLive(host)
  }

  /** Runs `step` now if the host may share everything it holds, else once it may (if the session is still on). */
  private afterReady (host: DocumentHost, step: () => void): void {
    const ready = host.readyToShare()
    if (ready === null) return step()
    ready.then(() => {
      if (this.is(ENDED)) return
      try {
        step()
      } catch (error) {
        this.options.onError(error)
      }
    }, () => {}) // local storage failed: send nothing it does not hold; the host reports the failure
  }

  private goLive (host: DocumentHost): void {
    if (!this.is(LIVE)) {
      this.mark(LIVE)
      const states = host.awarenessStates()
      if (states !== null) this.output({ type: 'awareness', update: states })
    }
  }

  private write (host: DocumentHost, update: Uint8Array, seq: number): void {
    const writable = this.options.mayWrite?.() !== false
    if (!writable && this.changes(host, update)) throw new AuthError(CloseCode.forbidden, `read-only access to ${this.docId}: updates are refused`)
    // From a peer that may only read, what the host has already is acknowledged without being applied.
    const durable = writable ? host.applyUpdate(update, this) : Promise.resolve()
    if (seq === 0) {
      durable.catch(() => {}) // nothing to acknowledge; the host reports storage failures
      return
    }
    // Acknowledgements are cumulative and in order: never past an update that is not durable.
    const acks = this.numbering
    acks.lastDurable = acks.lastDurable.then(() => durable)
    acks.lastDurable.then(() => this.acknowledge(acks, seq), () => {})
  }

  private changes (host: DocumentHost, update: Uint8Array): boolean {
    if (update.length <= EMPTY_UPDATE_LENGTH) return false
    validateUpdate(update)
    return host.changes(update)
  }

  private acknowledge (acks: Acks, seq: number): void {
    if (this.is(ENDED)) return
    if (acks.due === 0) {
      nextTurn(() => {
        if (!this.is(ENDED)) this.output({ type: 'ack', seq: acks.due })
        acks.due = 0
      })
    }
    acks.due = Math.max(acks.due, seq)
  }

  private onAck (host: DocumentHost, seq: number): void {
    const acks = this.acks
    if (acks === null || seq <= acks.acked || seq > acks.sent) return
    acks.acked = seq
    let localChanges = -1
    const { coverage } = acks
    while (coverage.length > 0 && coverage[0]!.seq <= seq) localChanges = coverage.shift()!.localChanges
    if (localChanges >= 0) host.acknowledged(this, localChanges)
    this.settleCatchUp()
  }

  private sendNumbered (update: Uint8Array, localChanges: number): number {
    const acks = this.numbering
    const seq = ++acks.sent
    acks.coverage.push({ seq, localChanges })
    this.output({ type: 'update', seq, update })
    return seq
  }

  private settleCatchUp (): void {
    const acks = this.acks
    if (!this.is(SYNCED) || acks === null) return
    acks.catchUpWaiters = acks.catchUpWaiters.filter(waiter => {
      if (waiter.seq < 0) waiter.seq = acks.sent
      if (acks.acked < waiter.seq) return true
      waiter.resolve()
      return false
    })
  }

  /**
   * Sends the answer to an open. A large answer is the same bytes for every peer until the
   * document changes (see the relay's sync answers): its frame is encoded once and shared,
   * so peers that do not read cannot make the relay hold a copy each.
   */
  private sendAnswer (stateVector: Uint8Array, update: Uint8Array): void {
    if (update.length < SHARED_FRAME_BYTES) return this.output({ type: 'sync', stateVector, update })
    let frames = sharedFrames.get(update)
    if (frames === undefined) {
      frames = new Map()
      sharedFrames.set(update, frames)
    }
    let frame = frames.get(this.options.framing)
    if (frame === undefined) {
      frame = this.encode({ type: 'sync', stateVector, update })!
      frames.set(this.options.framing, frame)
    }
    if (!this.is(ENDED)) this.options.send(frame)
  }

  private output (message: SessionOutput): void {
    if (this.is(ENDED)) return
    const frame = this.encode(message)
    if (frame !== null) this.options.send(frame)
  }

  private encode (message: SessionOutput): Uint8Array | null {
    return this.options.framing.encode(this.docId, message)
  }
}
