/**
 * Direct WebRTC links between replicas that have a document open through the same relay.
 * The relay only passes signals on (native `signal` messages, to clients that have the
 * document open, stamped with the sender's id and write access); each pair of replicas
 * then gets one RTCDataChannel running the native protocol, and every document both have
 * open through that relay syncs over it, with the access the relay vouched for. Edits keep
 * flowing between them when the relay goes away. Signals are JSON: `hi` (I am here), and
 * the offer, answer and ICE candidates; the replica whose id sorts first makes the offer.
 */
import { CloseCode } from '../shared/wire/close-codes.js'
import type { DocId } from '../shared/wire/doc-id.js'
import type { PeerInfo } from '../shared/wire/native-messages.js'
import type { ControlMessage, PeerConnection } from '../shared/sync/connection.js'
import { rtcLink, type DataChannel } from '../shared/transport/rtc.js'
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
}

type Signal =
  | { t: 'hi', reply?: boolean }
  | { t: 'offer' | 'answer', sdp: string }
  | { t: 'ice', candidate: unknown }

interface Peer {
  rtc: RtcPeerConnection
  /** Documents the relay vouched for, with the access of the peer. */
  access: Map<DocId, Access>
  /** The relay connection to signal this peer through. */
  relay: PeerConnection
  connection: PeerConnection | null
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** See the module comment. */
export class WebRtcPeers {
  private readonly group: LinkGroup
  private readonly peers = new Map<string, Peer>()
  private readonly RTC: NonNullable<WebRtcOptions['RTCPeerConnection']>
  private closed = false

  constructor (private readonly self: PeerInfo, private readonly options: WebRtcOptions = {}) {
    const RTC = options.RTCPeerConnection ?? (globalThis as { RTCPeerConnection?: WebRtcOptions['RTCPeerConnection'] }).RTCPeerConnection
    if (RTC === undefined) throw new Error('webrtc needs an RTCPeerConnection: this platform has none, pass webrtc: { RTCPeerConnection }')
    this.RTC = RTC
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
    if (relay.peer?.durable !== true) return
    this.signal(relay, docId, '', { t: 'hi' })
  }

  /** A signal the relay passed on. */
  receive (message: Extract<ControlMessage, { type: 'signal' }>, relay: PeerConnection): void {
    if (this.closed || message.peerId === '' || message.peerId === this.self.peerId) return
    let signal: Signal
    try {
      signal = JSON.parse(decoder.decode(message.payload)) as Signal
    } catch {
      return // a peer's garbage costs it its link, not ours to the relay
    }
    const { docId, peerId } = message
    if (signal.t === 'hi') {
      const peer = this.peers.get(peerId)
      const fresh = peer === undefined || peer.connection === null && peer.rtc.connectionState === 'failed'
      this.peerFor(peerId, relay).access.set(docId, message.writable ? 'write' : 'read')
      if (signal.reply !== true) this.signal(relay, docId, peerId, { t: 'hi', reply: true })
      if (fresh && this.self.peerId < peerId) void this.offer(peerId, docId, relay)
      else this.openVouched(peerId, docId)
      return
    }
    const peer = this.peers.get(peerId)
    if (signal.t === 'offer') void this.answer(this.peerFor(peerId, relay), peerId, docId, signal.sdp)
    else if (signal.t === 'answer') peer?.rtc.setRemoteDescription({ type: 'answer', sdp: signal.sdp }).catch(() => this.drop(peerId))
    else if (signal.t === 'ice') peer?.rtc.addIceCandidate(signal.candidate).catch(() => {})
  }

  /** Peers with a direct link up. */
  get linked (): string[] {
    return [...this.peers].filter(([, peer]) => peer.connection?.ready === true).map(([peerId]) => peerId)
  }

  close (): void {
    this.closed = true
    this.group.close(CloseCode.goingAway, 'replica closing')
    for (const peerId of [...this.peers.keys()]) this.drop(peerId)
  }

  private peerFor (peerId: string, relay: PeerConnection): Peer {
    let peer = this.peers.get(peerId)
    if (peer === undefined || (peer.connection === null && peer.rtc.connectionState === 'failed')) {
      if (peer !== undefined) peer.rtc.close()
      const rtc = new this.RTC({ iceServers: this.options.iceServers ?? [] })
      peer = { rtc, access: peer?.access ?? new Map(), relay, connection: null }
      this.peers.set(peerId, peer)
      const signalling = peer
      rtc.onicecandidate = event => {
        if (event.candidate !== null) this.signal(signalling.relay, [...signalling.access.keys()][0]!, peerId, { t: 'ice', candidate: event.candidate.toJSON?.() ?? event.candidate })
      }
      rtc.onconnectionstatechange = () => {
        if (['failed', 'closed'].includes(rtc.connectionState) && this.peers.get(peerId)?.rtc === rtc) this.drop(peerId)
      }
    }
    peer.relay = relay
    return peer
  }

  private async offer (peerId: string, docId: DocId, relay: PeerConnection): Promise<void> {
    const peer = this.peerFor(peerId, relay)
    this.onChannel(peerId, peer, peer.rtc.createDataChannel('petaldb'), 'dial')
    try {
      const offer = await peer.rtc.createOffer()
      await peer.rtc.setLocalDescription(offer)
      this.signal(relay, docId, peerId, { t: 'offer', sdp: offer.sdp ?? '' })
    } catch {
      this.drop(peerId)
    }
  }

  private async answer (peer: Peer, peerId: string, docId: DocId, sdp: string): Promise<void> {
    peer.rtc.ondatachannel = event => this.onChannel(peerId, peer, event.channel, 'accept')
    try {
      await peer.rtc.setRemoteDescription({ type: 'offer', sdp })
      const answer = await peer.rtc.createAnswer()
      await peer.rtc.setLocalDescription(answer)
      this.signal(peer.relay, docId, peerId, { t: 'answer', sdp: answer.sdp ?? '' })
    } catch {
      this.drop(peerId)
    }
  }

  private onChannel (peerId: string, peer: Peer, raw: unknown, role: 'dial' | 'accept'): void {
    const channel = raw as DataChannel & { onopen: (() => void) | null }
    channel.onopen = () => {
      if (this.peers.get(peerId) !== peer || this.closed) return channel.close()
      peer.connection = this.group.run(rtcLink(channel), role, {
        // Only documents the relay vouched for, with the access it vouched for.
        access: docId => peer.access.get(docId) ?? null,
        onClose: () => { if (this.peers.get(peerId) === peer) this.drop(peerId) }
      })
    }
  }

  /** A document the relay vouched for may now sync over an existing link. */
  private openVouched (peerId: string, docId: DocId): void {
    const connection = this.peers.get(peerId)?.connection
    const doc = this.group.doc(docId)
    if (connection?.ready === true && doc !== undefined) this.group.open(connection, doc)
  }

  private drop (peerId: string): void {
    const peer = this.peers.get(peerId)
    if (peer === undefined) return
    this.peers.delete(peerId)
    peer.connection?.close(CloseCode.normal, 'peer gone')
    peer.rtc.close()
  }

  private signal (relay: PeerConnection, docId: DocId, peerId: string, signal: Signal): void {
    if (!relay.closed) relay.send({ type: 'signal', docId, peerId, writable: false, user: '', payload: encoder.encode(JSON.stringify(signal)) })
  }
}
