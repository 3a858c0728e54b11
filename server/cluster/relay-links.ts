/**
 * The links of a relay to the other relays of its cluster: one per pair, dialed by the
 * relay with the smaller id and re-dialed with short backoff when lost, authenticated by
 * the cluster secret in HELLO. Each link is a native connection between two relays
 * (see `shared/sync/connection.ts`); what runs over it is the replicator's business.
 */
import { timingSafeEqual } from 'node:crypto'
import type { Logger } from 'pino'
import type WebSocket from 'ws'
import { requirePeer } from '../../shared/node-peers.js'
import { AuthError, ProtocolError } from '../../shared/errors.js'
import { CloseCode } from '../../shared/wire/close-codes.js'
import type { NativeMessage, PeerInfo } from '../../shared/wire/native-messages.js'
import type { PeerConnection } from '../../shared/sync/connection.js'
import { connectWebSocket, type WebSocketConstructor } from '../../shared/transport/websocket.js'
import type { Cluster } from './cluster.js'
import type { DocumentRegistry } from '../documents/registry.js'
import type { RelayPeers } from '../../shared/listen/native-accept.js'
import { dialRelayLink, relayPolicy } from './relay-link-policy.js'

/** What the owner of the links hears. */
export interface RelayLinkEvents {
  up(peerId: string, connection: PeerConnection): void
  down(peerId: string, connection: PeerConnection): void
  /** Tombstones arrived on the link that is up to `peerId`. */
  tombstones(peerId: string, connection: PeerConnection, message: Extract<NativeMessage, { type: 'tombstones' }>): void
}

/** Longest pause between two dials of a lost relay. */
const MAX_REDIAL_MS = 500

function sameSecret (a: string, b: string): boolean {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

/** See the module comment. */
export class RelayLinks {
  private readonly links = new Map<string, PeerConnection>()
  private closed = false
  private readonly dialing: Array<Promise<void>> = []
  private readonly self: PeerInfo

  constructor (private readonly cluster: Cluster, private readonly registry: DocumentRegistry, private readonly events: RelayLinkEvents, private readonly logger: Logger) {
    this.self = { peerId: cluster.selfId, isRelay: true }
  }

  /** Starts dialing the relays this relay is responsible for dialing. */
  start (): void {
    for (const member of this.cluster.others) {
      if (this.cluster.selfId < member.id) this.dialing.push(this.dialLoop(member.id, member.url))
    }
  }

  /** Whether the link to `peerId` is up. */
  isUp (peerId: string): boolean {
    return this.links.has(peerId)
  }

  /** How many links are up, and how many of them the other relay dialed (sockets this relay accepted). */
  get counts (): { up: number, inbound: number } {
    const ids = [...this.links.keys()]
    return { up: ids.length, inbound: ids.filter(id => id < this.cluster.selfId).length }
  }

  /** The ready link to `peerId`, if it is up. */
  get (peerId: string): PeerConnection | null {
    return this.links.get(peerId) ?? null
  }

  /** How inbound links from relays that dial this one are admitted (for the native connection handler). */
  get accepting (): RelayPeers {
    return {
      admit: hello => this.admit(hello),
      policy: connection => relayPolicy(connection, this.registry, this.logger, (from, message) => this.tombstones(from, message)),
      accepted: connection => this.up(connection.peer!.peerId, connection),
      closed: connection => this.down(connection)
    }
  }

  /** Closes every link and stops dialing. */
  async close (): Promise<void> {
    this.closed = true
    for (const connection of this.links.values()) connection.close(CloseCode.goingAway, 'relay shutting down')
    await Promise.all(this.dialing)
  }

  private admit (hello: Extract<NativeMessage, { type: 'hello' }>): void {
    if (!sameSecret(hello.token, this.cluster.secret)) throw new AuthError(CloseCode.unauthorized, 'wrong cluster secret')
    const from = hello.peer.peerId
    if (!this.cluster.others.some(member => member.id === from) || !(from < this.cluster.selfId)) {
      throw new ProtocolError(`relay ${JSON.stringify(from)} is not a member that dials this relay`)
    }
  }

  private up (peerId: string, connection: PeerConnection): void {
    const previous = this.links.get(peerId)
    if (previous !== undefined) {
      // What was in flight on the old link is lost with it.
      this.links.delete(peerId)
      this.events.down(peerId, previous)
      previous.close(CloseCode.goingAway, 'replaced by a newer link')
    }
    this.links.set(peerId, connection)
    this.logger.info({ peer: peerId }, 'relay link up')
    this.events.up(peerId, connection)
  }

  private down (connection: PeerConnection): void {
    const peerId = connection.peer?.peerId ?? ''
    if (this.links.get(peerId) !== connection) return
    this.links.delete(peerId)
    this.logger.info({ peer: peerId }, 'relay link down')
    this.events.down(peerId, connection)
  }

  private tombstones (connection: PeerConnection, message: Extract<NativeMessage, { type: 'tombstones' }>): void {
    const peerId = connection.peer?.peerId ?? ''
    // What a replaced link still delivers is its predecessor's: the new link sends it all again.
    if (this.links.get(peerId) === connection) this.events.tombstones(peerId, connection, message)
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
    let link
    try {
      link = await connectWebSocket(url, requirePeer<typeof WebSocket>('ws', 'Relay links') as unknown as WebSocketConstructor, 2000)
    } catch {
      return false
    }
    return new Promise(resolve => {
      let welcomed = false
      const connection = dialRelayLink(link, {
        registry: this.registry,
        logger: this.logger,
        self: this.self,
        secret: this.cluster.secret,
        onReady: ready => {
          if (ready.peer?.peerId !== peerId || !ready.peer.isRelay) {
            ready.close(CloseCode.badRequest, `expected relay ${peerId}`)
            return
          }
          welcomed = true
          this.up(peerId, ready)
        },
        onTombstones: (ready, message) => this.tombstones(ready, message),
        onClose: (code, reason) => {
          if (welcomed) this.down(connection)
          else if (code === CloseCode.unauthorized) this.logger.error({ peer: peerId, reason }, 'relay refused this relay\'s cluster secret')
          resolve(welcomed)
        }
      })
      if (this.closed) connection.close(CloseCode.goingAway, 'relay shutting down')
    })
  }
}
