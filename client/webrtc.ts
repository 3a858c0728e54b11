/**
 * Direct WebRTC links between replicas that have a document open through the same relay.
 * The relay only passes signals on (native `signal` messages, to clients that have the
 * document open), stamped with what it knows of the sender: the id it bound to the sender's
 * connection, whether the sender may write the document, and its token's user. Each pair of
 * replicas then gets one RTCDataChannel running the native protocol, and every document
 * both have open through that relay syncs over it, with the access the relay vouched for.
 * Edits keep flowing between them when the relay goes away.
 *
 * Signals are JSON: `hi` (I am here), and the offer, answer and ICE candidates; the replica
 * whose id sorts first makes the offer. A peer is known only through the relay connection
 * that introduced it with a `hi`: signals about it from elsewhere are someone else's, a link
 * must be made with the id the relay vouched for, and an offer, answer or candidate is taken
 * only in its turn of the negotiation. Nothing a peer sends can throw out of an event handler.
 */
import { UsageError } from '../shared/errors.js'
import { CloseCode } from '../shared/wire/close-codes.js'
import type { DocId } from '../shared/wire/doc-id.js'
import type { PeerInfo } from '../shared/wire/native-messages.js'
import type { ControlMessage, PeerConnection } from '../shared/sync/connection.js'
import { rtcLink, type DataChannel } from '../shared/transport/rtc.js'
import { DEFAULT_LIMITS } from '../shared/listen/limits.js'
import { readSignalPayload, type SignalPayload } from '../shared/validation/signal-payload.js'
import { LinkGroup, type Access } from './link-group.js'
import type { LocalDoc } from './local-doc.js'

/** The part of the WebRTC API this module uses (browsers have it; on Node, inject one). */
export interface RtcPeerConnection {
  createDataChannel(label: string): unknown
  createOffer(): Promise<{ type: string, sdp?: string }>
  createAnswer(): Promise<{ type: string, sdp?: string }>
  setLocalDescription(description: { type: string, sdp?: string }): Promise<void>
  setRemoteDescription(description: { type: string, sdp?: string }): Promise<void>
  addIceCandidate(candidate: unknown): Promise<void>
  close(): void
  onicecandidate: ((event: { candidate: { toJSON?: () => unknown } | null }) => void) | null
  ondatachannel: ((event: { channel: unknown }) => void) | null
  onconnectionstatechange: (() => void) | null
  readonly connectionState: string
}

/** WebRTC options of a replica. */
export interface WebRtcOptions {
  /** STUN / TURN servers. Default none: peers on one network (or loopback) find each other without. */
  iceServers?: Array<{ urls: string | string[], username?: string, credential?: string }>
  /** The RTCPeerConnection implementation. Default `globalThis.RTCPeerConnection`. */
  RTCPeerConnection?: new (configuration: { iceServers: NonNullable<WebRtcOptions['iceServers']> }) => RtcPeerConnection
  /** Direct links at most, made or being made (each costs a connection and its buffers); peers beyond sync through the relay. Default 32. */
  maxPeers?: number
}

type Signal =
  | { t: 'hi', reply?: boolean }
  | { t: 'offer', sdp: string }
  | { t: 'answer', sdp: string }
  | { t: 'ice', candidate: unknown }

/** Where a peer's negotiation stands: an offer or an answer is taken only in its turn. */
type Negotiation = 'idle' | 'offered' | 'answering' | 'done'

interface Peer {
  readonly peerId: string
  /** The relay connection that introduced the peer: the only one its signals are taken from. */
  readonly relay: PeerConnection
  readonly rtc: RtcPeerConnection
  /** Documents the relay vouched for, with the access of the peer. */
  readonly access: Map<DocId, Access>
  /** The peer's user, as the relay stamped it ('' for none): signals stamped with another are someone else's. */
  readonly user: string
  /** The document the negotiation is signaled about (the relay passes signals only about documents both have open). */
  readonly docId: DocId
  negotiation: Negotiation
  /** Candidates that came before the other side's description was set (adding one then fails): null once it is. */
  early: unknown[] | null
  connection: PeerConnection | null
  /** Drops the peer if its link is not up in time. */
  readonly deadline: ReturnType<typeof setTimeout>
}

/** How long a direct link may take to come up before the attempt is dropped (a later `hi` tries again). */
const CONNECT_TIMEOUT_MS = 30_000

/** Candidates held for a peer until its description is set: a real one sends a dozen or so. */
const MAX_EARLY_CANDIDATES = 64

/** Characters of an SDP at most; real ones are a few kilobytes. */
const MAX_SDP_LENGTH = 16 * 1024

const encoder = new TextEncoder()

/** Relay connections, numbered to key peers by the connection that introduced them. */
const relayNumbers = new WeakMap<PeerConnection, number>()
let lastRelayNumber = 0

function keyOf (relay: PeerConnection, peerId: string): string {
  let number = relayNumbers.get(relay)
  if (number === undefined) relayNumbers.set(relay, number = ++lastRelayNumber)
  return `${number} ${peerId}`
}

/** The signal in `payload`, or null if it is not one (its relay checked it; this replica does too). */
function parseSignal (payload: Uint8Array): Signal | null {
  let signal: SignalPayload
  try {
    signal = readSignalPayload(payload, false)
  } catch {
    return null
  }
  if ((signal.t === 'offer' || signal.t === 'answer') && (typeof signal.sdp !== 'string' || signal.sdp.length > MAX_SDP_LENGTH)) return null
  return signal as Signal
}

/** See the module comment. */
export class WebRtcPeers {
  private readonly group: LinkGroup
  /** By the relay connection that introduced each, and its id. */
  private readonly peers = new Map<string, Peer>()
  private readonly RTC: NonNullable<WebRtcOptions['RTCPeerConnection']>
  private readonly maxPeers: number
  private closed = false

  constructor (private readonly self: PeerInfo, private readonly options: WebRtcOptions = {}) {
    const RTC = options.RTCPeerConnection ?? (globalThis as { RTCPeerConnection?: WebRtcOptions['RTCPeerConnection'] }).RTCPeerConnection
    if (RTC === undefined) throw new UsageError('webrtc needs an RTCPeerConnection: this platform has none, pass webrtc: { RTCPeerConnection }')
    this.RTC = RTC
    this.maxPeers = options.maxPeers ?? 32
    this.group = new LinkGroup({ self })
  }

  attach (doc: LocalDoc): void {
    this.group.attach(doc)
  }

  detach (docId: DocId): void {
    this.group.detach(docId)
  }

  /** A document was opened through `relay`: tell the document's other clients there that this replica is here. */
  announce (docId: DocId, relay: PeerConnection): void {
    if (relay.peer?.isRelay !== true) return
    this.signal(relay, docId, '', { t: 'hi' })
  }

  /** A signal the relay passed on, stamped with its sender's id, access and user. */
  receive (message: Extract<ControlMessage, { type: 'signal' }>, relay: PeerConnection): void {
    const { docId, peerId } = message
    if (this.closed || relay.peer?.isRelay !== true || peerId === '' || peerId === this.self.peerId) return
    const signal = parseSignal(message.payload)
    if (signal === null) return // not ours to judge: the relay checks what it passes on
    const key = keyOf(relay, peerId)
    if (signal.t === 'hi') return this.hello(key, relay, message, signal)
    let peer = this.peers.get(key)
    if (peer === undefined) return // a peer that never said hi through this relay
    if (signal.t === 'offer') {
      // A peer that offers again gave up its side of an attempt that never linked: so do we.
      if (peer.negotiation !== 'idle' && peer.connection === null) peer = this.restart(key, peer)
      void this.answer(key, peer, signal.sdp)
    } else if (signal.t === 'answer') {
      this.answered(key, peer, signal.sdp)
    } else {
      // Candidates may come before the offer they belong to: a side gathers them while it sets its own description.
      this.candidate(peer, signal.candidate)
    }
  }

  /** Peers with a direct link up. */
  get linked (): string[] {
    return [...this.peers.values()].filter(peer => peer.connection?.ready === true).map(peer => peer.peerId)
  }

  close (): void {
    this.closed = true
    this.group.close(CloseCode.goingAway, 'replica closing')
    for (const key of [...this.peers.keys()]) this.drop(key)
  }

  /** A peer says it is here (or answers our `hi`): record what the relay vouched for, and link if we do not yet. */
  private hello (key: string, relay: PeerConnection, message: Extract<ControlMessage, { type: 'signal' }>, signal: { reply?: boolean }): void {
    const { docId, peerId } = message
    if (signal.reply !== true) this.signal(relay, docId, peerId, { t: 'hi', reply: true })
    let peer = this.peers.get(key)
    // Another user under the id (the one we knew left the relay, someone else's connection took
    // it): not the peer our link is with, whatever that link was vouched for.
    if (peer !== undefined && peer.user !== message.user) {
      this.drop(key)
      peer = undefined
    }
    if (peer === undefined) {
      if (this.peers.size >= this.maxPeers) return
      peer = this.createPeer(key, relay, peerId, docId, message.user)
    }
    peer.access.set(docId, message.writable ? 'write' : 'read')
    if (peer.negotiation === 'idle' && this.self.peerId < peerId) void this.offer(key, peer)
    const doc = this.group.doc(docId)
    if (peer.connection?.ready === true && doc !== undefined) this.group.open(peer.connection, doc)
  }

  private createPeer (key: string, relay: PeerConnection, peerId: string, docId: DocId, user: string): Peer {
    const rtc = new this.RTC({ iceServers: this.options.iceServers ?? [] })
    const peer: Peer = {
      peerId,
      relay,
      rtc,
      access: new Map(),
      user,
      docId,
      negotiation: 'idle',
      early: [],
      connection: null,
      deadline: setTimeout(() => { if (this.peers.get(key) === peer && peer.connection === null) this.drop(key) }, CONNECT_TIMEOUT_MS)
    }
    ;(peer.deadline as { unref?: () => void }).unref?.()
    this.peers.set(key, peer)
    rtc.onicecandidate = event => guard(() => {
      if (event.candidate !== null && this.peers.get(key) === peer) this.signal(relay, docId, peerId, { t: 'ice', candidate: event.candidate.toJSON?.() ?? event.candidate })
    })
    rtc.onconnectionstatechange = () => guard(() => {
      if (['failed', 'closed'].includes(rtc.connectionState) && this.peers.get(key) === peer) this.drop(key)
    })
    rtc.ondatachannel = event => guard(() => {
      if (peer.negotiation === 'answering' || peer.negotiation === 'done') this.onChannel(key, peer, event.channel, 'accept')
    })
    return peer
  }

  /** A fresh attempt with a peer, with what the relay vouched for it so far. */
  private restart (key: string, old: Peer): Peer {
    this.drop(key)
    const peer = this.createPeer(key, old.relay, old.peerId, old.docId, old.user)
    for (const [docId, access] of old.access) peer.access.set(docId, access)
    // Candidates that came just before the new offer belong to it.
    if (old.early !== null) peer.early = old.early
    return peer
  }

  private async offer (key: string, peer: Peer): Promise<void> {
    peer.negotiation = 'offered'
    try {
      this.onChannel(key, peer, peer.rtc.createDataChannel('petaldb'), 'dial')
      const offer = await peer.rtc.createOffer()
      await peer.rtc.setLocalDescription(offer)
      this.signal(peer.relay, peer.docId, peer.peerId, { t: 'offer', sdp: offer.sdp ?? '' })
    } catch {
      this.drop(key)
    }
  }

  /** An offer, taken only from a peer whose id sorts first (it makes the offer), once. */
  private async answer (key: string, peer: Peer, sdp: string): Promise<void> {
    if (peer.negotiation !== 'idle' || !(peer.peerId < this.self.peerId)) return
    peer.negotiation = 'answering'
    try {
      await peer.rtc.setRemoteDescription({ type: 'offer', sdp })
      this.described(peer)
      const answer = await peer.rtc.createAnswer()
      await peer.rtc.setLocalDescription(answer)
      this.signal(peer.relay, peer.docId, peer.peerId, { t: 'answer', sdp: answer.sdp ?? '' })
    } catch {
      this.drop(key)
    }
  }

  /** An answer, taken only to an offer this replica made, once. */
  private answered (key: string, peer: Peer, sdp: string): void {
    if (peer.negotiation !== 'offered') return
    peer.negotiation = 'done'
    peer.rtc.setRemoteDescription({ type: 'answer', sdp }).then(() => this.described(peer), () => this.drop(key))
  }

  /** Adds a candidate of the other side's, or holds it until its description is set (a few: a peer may not flood). */
  private candidate (peer: Peer, candidate: unknown): void {
    if (peer.early === null) peer.rtc.addIceCandidate(candidate).catch(() => {})
    else if (peer.early.length < MAX_EARLY_CANDIDATES) peer.early.push(candidate)
  }

  /** The other side's description is set: the candidates held can be added now. */
  private described (peer: Peer): void {
    const early = peer.early ?? []
    peer.early = null
    for (const candidate of early) this.candidate(peer, candidate)
  }

  private onChannel (key: string, peer: Peer, raw: unknown, role: 'dial' | 'accept'): void {
    const channel = raw as DataChannel & { onopen: (() => void) | null }
    channel.onopen = () => guard(() => {
      if (this.peers.get(key) !== peer || this.closed || peer.connection !== null) return channel.close()
      clearTimeout(peer.deadline)
      peer.connection = this.group.run(rtcLink(channel, DEFAULT_LIMITS.maxFrameBytes), role, {
        // The link is with the peer the relay vouched for, for the documents and with the access it vouched for.
        expectedPeerId: peer.peerId,
        ...(peer.user === '' ? {} : { user: peer.user }),
        access: docId => peer.access.get(docId) ?? null,
        onReady: () => this.replaced(key, peer),
        onClose: () => { if (this.peers.get(key) === peer) this.drop(key) }
      })
    })
  }

  /** A new link to a peer is up: links to it that relays which are gone introduced go. */
  private replaced (key: string, peer: Peer): void {
    for (const [other, old] of this.peers) {
      if (other !== key && old.peerId === peer.peerId && old.relay.closed) this.drop(other)
    }
  }

  private drop (key: string): void {
    const peer = this.peers.get(key)
    if (peer === undefined) return
    this.peers.delete(key)
    clearTimeout(peer.deadline)
    peer.connection?.close(CloseCode.normal, 'peer gone')
    try {
      peer.rtc.close()
    } catch {}
  }

  private signal (relay: PeerConnection, docId: DocId, peerId: string, signal: Signal): void {
    if (!relay.closed) relay.send({ type: 'signal', docId, peerId, writable: false, user: '', payload: encoder.encode(JSON.stringify(signal)) })
  }
}

/** Runs an event handler's body: a WebRTC implementation calls handlers from its own dispatch, where a throw may end the process. */
function guard (body: () => void): void {
  try {
    body()
  } catch {}
}
