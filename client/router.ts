/**
 * Decides which relay each document syncs with. Against a single relay every document
 * goes over one connection. Once a relay sends its cluster map, each document goes to the
 * first of its homes (rendezvous placement) whose connection is not offline; when that
 * connection fails the document moves to the next home at once, and the handshake there
 * re-sends whatever was not acknowledged. A redirect from a relay moves a document too.
 */
import type { DocId } from '../shared/wire/doc-id.js'
import { homesOf, type ClusterMap } from '../shared/placement.js'
import type { LocalDoc } from './local-doc.js'
import { Dialer, type DialerOptions } from './dialer.js'

/** Options of {@link Router}. */
export type RouterOptions = Pick<DialerOptions, 'connect' | 'self' | 'onStatus' | 'onRefused' | 'onOpen' | 'onSignal' | 'token' | 'tokenRenews' | 'minDelayMs' | 'maxDelayMs' | 'untilOnline'> & {
  /** Relay URLs to start from, tried in turn. */
  relays: string[]
}

/** See the module comment. */
export class Router {
  private readonly docs = new Map<DocId, LocalDoc>()
  private readonly assignment = new Map<DocId, Dialer>()
  /** Connections to cluster members, by URL. */
  private readonly members = new Map<string, Dialer>()
  private readonly bootstrap: Dialer
  private map: ClusterMap | null = null
  private closed = false

  constructor (private readonly options: RouterOptions) {
    this.bootstrap = this.connection(options.relays)
  }

  /** Syncs `doc` from now on. */
  attach (doc: LocalDoc): void {
    if (this.closed) return
    this.docs.set(doc.docId, doc)
    this.assign(doc, this.choose(doc.docId))
  }

  /** Stops syncing `docId`. */
  detach (docId: DocId): void {
    this.docs.delete(docId)
    this.assignment.get(docId)?.detach(docId)
    this.assignment.delete(docId)
  }

  /** Sends a fresh token to every connected relay. */
  refreshToken (token: string): void {
    for (const connection of this.dialers) connection.refreshToken(token)
  }

  /** Reconnects every link now (see `Dialer.reconnect`). */
  reconnect (): void {
    for (const connection of this.dialers) connection.reconnect()
  }

  async close (): Promise<void> {
    this.closed = true
    await Promise.all([...this.dialers].map(connection => connection.close()))
  }

  /** Every connection, each once (the bootstrap may be a member's too). */
  private get dialers (): Set<Dialer> {
    return new Set([this.bootstrap, ...this.members.values()])
  }

  private connection (urls: string[]): Dialer {
    const { relays: _relays, ...shared } = this.options
    const connection: Dialer = new Dialer({
      ...shared,
      urls,
      // The relays given, and the members and redirects they name: relays this replica chose.
      relays: true,
      onStatus: (url, status) => {
        this.options.onStatus(url, status)
        if (status === 'offline') this.failover(connection)
      },
      onCluster: map => this.learn(map),
      onRedirect: (docId, url) => {
        const doc = this.docs.get(docId)
        if (doc !== undefined && !this.closed) this.assign(doc, this.member(url))
      }
    })
    return connection
  }

  private member (url: string): Dialer {
    let connection = this.members.get(url)
    if (connection === undefined) {
      // One connection per relay: a relay binds this replica's peer id to one connection, and refuses a second (4409).
      // The bootstrap connection is the member it reached (the one that sent the map), and stays with it.
      if (this.bootstrap.url === url) {
        this.bootstrap.pin(url)
        connection = this.bootstrap
      } else {
        connection = this.connection([url])
      }
      this.members.set(url, connection)
    }
    return connection
  }

  /** A relay sent the cluster map: route by placement, moving documents whose relay is no longer one of their homes. */
  private learn (map: ClusterMap): void {
    if (this.closed || map.members.length === 0) return
    this.map = map
    for (const doc of this.docs.values()) {
      const current = this.assignment.get(doc.docId)
      const homes = homesOf(doc.docId, map.members, map.copies).map(member => this.members.get(member.url))
      if (current === undefined || !homes.includes(current)) this.assign(doc, this.choose(doc.docId))
    }
  }

  /** The connection `docId` should use now. */
  private choose (docId: DocId): Dialer {
    if (this.map === null) return this.bootstrap
    // The first home whose connection is not known to be offline: only the one chosen is dialed.
    const homes = homesOf(docId, this.map.members, this.map.copies)
    const home = homes.find(member => this.members.get(member.url)?.status !== 'offline') ?? homes[0]!
    return this.member(home.url)
  }

  private assign (doc: LocalDoc, connection: Dialer): void {
    const current = this.assignment.get(doc.docId)
    if (current === connection || this.closed) return
    current?.detach(doc.docId)
    this.assignment.set(doc.docId, connection)
    connection.attach(doc)
  }

  /** A connection failed: move its documents to their next home right away. */
  private failover (connection: Dialer): void {
    if (this.map === null || this.closed) return
    for (const doc of connection.attached) {
      const next = this.choose(doc.docId)
      if (next !== connection) this.assign(doc, next)
    }
  }
}
