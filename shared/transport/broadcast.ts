/**
 * Point-to-point {@link Link}s between the members of one BroadcastChannel: the tabs of an
 * origin (or, on Node, the holders of a channel name in one process and its workers).
 * Members announce themselves when they join; for each pair, the member whose id sorts
 * first opens a link, and both ends get it. Each message names its sender and receiver,
 * so the channel's broadcast carries many links. A member that stops sending heartbeats
 * (a tab that was killed) has its links closed by the others.
 */
import type { Link } from './link.js'
import { UsageError } from '../errors.js'

/** The BroadcastChannel constructor (browsers and Node 18+ have one globally). */
export type BroadcastChannelConstructor = new (name: string) => BroadcastChannel

type Envelope =
  | { t: 'announce' | 'here' | 'alive' | 'leave', from: string, to?: string }
  | { t: 'open', from: string, to: string }
  | { t: 'data', from: string, to: string, data: Uint8Array }
  | { t: 'close', from: string, to: string, code: number, reason: string }

/** Options of {@link BroadcastLinks}. */
export interface BroadcastLinksOptions {
  /** The channel's name: members with the same name find each other. */
  channel: string
  /** This member's id, unique among the members. */
  selfId: string
  /** A link to another member; `dialer` says whether this side opened it (and should say HELLO). */
  onLink: (link: Link, dialer: boolean, peerId: string) => void
  /** Largest message a member may send on a link (1009 beyond, closing it). Default 16 MiB. */
  maxMessageBytes?: number
  /** Milliseconds between heartbeats; a member silent for three of them is gone. Default 2000. */
  heartbeatMs?: number
  /** The implementation. Default `globalThis.BroadcastChannel`. */
  BroadcastChannel?: BroadcastChannelConstructor
}

const DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024

interface Member {
  link: Link
  lastHeard: number
}

/** See the module comment. */
export class BroadcastLinks {
  private readonly channel: BroadcastChannel
  private readonly members = new Map<string, Member>()
  private readonly heartbeat: ReturnType<typeof setInterval>
  private closed = false

  constructor (private readonly options: BroadcastLinksOptions) {
    const Channel = options.BroadcastChannel ?? globalThis.BroadcastChannel
    if (Channel === undefined) throw new UsageError('this platform has no BroadcastChannel: pass one')
    this.channel = new Channel(options.channel)
    this.channel.onmessage = event => this.receive(event.data as Envelope)
    const heartbeatMs = options.heartbeatMs ?? 2000
    this.heartbeat = setInterval(() => this.beat(heartbeatMs * 3), heartbeatMs)
    ;(this.heartbeat as { unref?: () => void }).unref?.()
    this.post({ t: 'announce', from: options.selfId })
  }

  /** Ids of the members linked to this one. */
  get peers (): string[] {
    return [...this.members.keys()]
  }

  /** Closes every link and leaves the channel. */
  close (): void {
    if (this.closed) return
    this.post({ t: 'leave', from: this.options.selfId })
    this.closed = true
    clearInterval(this.heartbeat)
    for (const peerId of [...this.members.keys()]) this.drop(peerId, 1001, 'left the channel')
    this.channel.close()
  }

  private receive (envelope: Envelope): void {
    const self = this.options.selfId
    if (this.closed || envelope.from === self || (envelope.to !== undefined && envelope.to !== self)) return
    const member = this.members.get(envelope.from)
    if (member !== undefined) member.lastHeard = Date.now()
    switch (envelope.t) {
      case 'announce':
        this.post({ t: 'here', from: self, to: envelope.from })
        return this.meet(envelope.from)
      case 'here':
        return this.meet(envelope.from)
      case 'open':
        if (member === undefined) this.link(envelope.from, false)
        return
      case 'data':
        if (member === undefined) return
        if (!(envelope.data instanceof Uint8Array) || envelope.data.length > (this.options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES)) return member.link.close(1009, 'message too large, or not bytes')
        member.link.onMessage(envelope.data)
        return
      case 'close':
        return this.drop(envelope.from, envelope.code, envelope.reason)
      case 'leave':
        return this.drop(envelope.from, 1001, 'left the channel')
      case 'alive':
        // A member we have no link with (its announcement was missed) gets one.
        return this.meet(envelope.from)
    }
  }

  /** A member is there: the one whose id sorts first opens the link. */
  private meet (peerId: string): void {
    if (this.members.has(peerId) || !(this.options.selfId < peerId)) return
    this.post({ t: 'open', from: this.options.selfId, to: peerId })
    this.link(peerId, true)
  }

  private link (peerId: string, dialer: boolean): void {
    const self = this.options.selfId
    const link: Link = {
      send: data => { if (this.members.get(peerId)?.link === link) this.post({ t: 'data', from: self, to: peerId, data }) },
      close: (code, reason) => {
        if (this.members.get(peerId)?.link !== link) return
        this.post({ t: 'close', from: self, to: peerId, code, reason })
        this.drop(peerId, code, reason)
      },
      onMessage: () => {},
      onClose: () => {}
    }
    this.members.set(peerId, { link, lastHeard: Date.now() })
    this.options.onLink(link, dialer, peerId)
  }

  private drop (peerId: string, code: number, reason: string): void {
    const member = this.members.get(peerId)
    if (member === undefined) return
    this.members.delete(peerId)
    member.link.onClose(code, reason)
  }

  private beat (silenceMs: number): void {
    this.post({ t: 'alive', from: this.options.selfId })
    const now = Date.now()
    for (const [peerId, member] of this.members) {
      if (now - member.lastHeard > silenceMs) this.drop(peerId, 1006, 'member went silent')
    }
  }

  private post (envelope: Envelope): void {
    if (!this.closed) this.channel.postMessage(envelope)
  }
}
