/**
 * Relay-to-relay links: one per pair of relays, dialed by the relay with the smaller id and
 * re-dialed with short backoff when lost, authenticated by the cluster secret in HELLO.
 * Messages are the native protocol's, used symmetrically (see the replicator).
 */
import { timingSafeEqual } from 'node:crypto'
import type { Logger } from 'pino'
import WebSocket from 'ws'
import { ProtocolError } from '../../shared/wire/bytes.js'
import { CloseCode } from '../../shared/wire/close-codes.js'
import type { Link } from '../../shared/transport/link.js'
import { NATIVE_PROTOCOL_VERSION, RELAY_SUBPROTOCOL, decodeNativeMessage, encodeNativeMessage, type NativeMessage } from '../../shared/wire/native-messages.js'
import { connectWebSocket, type WebSocketConstructor } from '../../shared/transport/websocket.js'
import type { Cluster } from './cluster.js'
import { HELLO_DEADLINE_MS, closeWith } from '../connections/closing.js'

/** What the owner of the links hears. */
export interface PeerLinkEvents {
  onUp(peerId: string): void
  onDown(peerId: string): void
  onMessage(peerId: string, message: NativeMessage): void
}

/** Longest pause between two dials of a lost peer. */
const MAX_REDIAL_MS = 500

function sameSecret (a: string, b: string): boolean {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

/** The links of one relay to its peers; see the module comment. */
export class PeerLinks {
  private readonly links = new Map<string, Link>()
  private closed = false
  private readonly dialing: Array<Promise<void>> = []

  constructor (private readonly cluster: Cluster, private readonly events: PeerLinkEvents, private readonly log: Logger) {}

  /** Starts dialing the peers this relay is responsible for dialing. */
  start (): void {
    for (const peer of this.cluster.peers) {
      if (this.cluster.selfId < peer.id) this.dialing.push(this.dialLoop(peer.id, peer.url))
    }
  }

  /** Whether the link to `peerId` is up. */
  isUp (peerId: string): boolean {
    return this.links.has(peerId)
  }

  /** Sends to `peerId`; returns false (sending nothing) if the link is down. */
  send (peerId: string, message: NativeMessage): boolean {
    const link = this.links.get(peerId)
    if (link === undefined) return false
    link.send(encodeNativeMessage(message))
    return true
  }

  /** Serves an inbound link (relay subprotocol): expects HELLO from a peer that dials us. */
  accept (link: Link): void {
    let peerId: string | null = null
    const deadline = setTimeout(() => { if (peerId === null) closeWith(link, CloseCode.unauthorized, 'no hello in time') }, HELLO_DEADLINE_MS)
    link.onMessage = frame => {
      try {
        const message = decodeNativeMessage(frame)
        if (peerId !== null) return this.events.onMessage(peerId, message)
        if (message.type !== 'hello') throw new ProtocolError('the first message must be hello')
        if (!sameSecret(message.token, this.cluster.secret)) {
          closeWith(link, CloseCode.unauthorized, 'wrong cluster secret')
          return
        }
        const from = this.cluster.peers.find(peer => peer.id === message.from)
        if (from === undefined || !(message.from < this.cluster.selfId)) throw new ProtocolError(`relay ${JSON.stringify(message.from)} is not a peer that dials this relay`)
        peerId = from.id
        clearTimeout(deadline)
        link.send(encodeNativeMessage({ type: 'welcome', version: NATIVE_PROTOCOL_VERSION, relayId: this.cluster.selfId }))
        this.up(peerId, link)
      } catch (error) {
        this.log.warn({ err: error, peer: peerId }, 'closing a relay link after a bad message')
        closeWith(link, CloseCode.badRequest, error instanceof ProtocolError ? error.message : 'message could not be processed')
      }
    }
    link.onClose = () => {
      clearTimeout(deadline)
      if (peerId !== null) this.down(peerId, link)
    }
  }

  /** Closes every link and stops dialing. */
  async close (): Promise<void> {
    this.closed = true
    for (const link of this.links.values()) link.close(CloseCode.goingAway, 'relay shutting down')
    await Promise.all(this.dialing)
  }

  private up (peerId: string, link: Link): void {
    const previous = this.links.get(peerId)
    if (previous !== undefined) {
      // What was in flight on the old link is lost with it.
      this.links.delete(peerId)
      this.events.onDown(peerId)
      previous.close(CloseCode.goingAway, 'replaced by a newer link')
    }
    this.links.set(peerId, link)
    this.log.info({ peer: peerId }, 'relay link up')
    this.events.onUp(peerId)
  }

  private down (peerId: string, link: Link): void {
    if (this.links.get(peerId) !== link) return
    this.links.delete(peerId)
    this.log.info({ peer: peerId }, 'relay link down')
    this.events.onDown(peerId)
  }

  private async dialLoop (peerId: string, url: string): Promise<void> {
    for (let failures = 0; !this.closed;) {
      const closedAfterUp = await this.dialOnce(peerId, url)
      failures = closedAfterUp ? 0 : failures + 1
      if (this.closed) break
      await new Promise(resolve => setTimeout(resolve, Math.random() * Math.min(MAX_REDIAL_MS, 25 * 2 ** failures)))
    }
  }

  /** Dials once and serves the link until it closes; resolves whether it got up. */
  private async dialOnce (peerId: string, url: string): Promise<boolean> {
    let link: Link
    try {
      link = await connectWebSocket(url, WebSocket as unknown as WebSocketConstructor, RELAY_SUBPROTOCOL, 2000)
    } catch {
      return false
    }
    return new Promise(resolve => {
      let welcomed = false
      link.onMessage = frame => {
        try {
          const message = decodeNativeMessage(frame)
          if (welcomed) return this.events.onMessage(peerId, message)
          if (message.type !== 'welcome' || message.relayId !== peerId) throw new ProtocolError(`expected welcome from ${peerId}`)
          welcomed = true
          this.up(peerId, link)
        } catch (error) {
          this.log.warn({ err: error, peer: peerId }, 'closing a relay link after a bad message')
          link.close(CloseCode.badRequest, error instanceof ProtocolError ? error.message : 'message could not be processed')
        }
      }
      link.onClose = (code, reason) => {
        if (welcomed) this.down(peerId, link)
        else if (code === CloseCode.unauthorized) this.log.error({ peer: peerId, reason }, 'peer refused this relay\'s cluster secret')
        resolve(welcomed)
      }
      if (this.closed) link.close(CloseCode.goingAway, 'relay shutting down')
      link.send(encodeNativeMessage({ type: 'hello', version: NATIVE_PROTOCOL_VERSION, token: this.cluster.secret, from: this.cluster.selfId }))
    })
  }
}
