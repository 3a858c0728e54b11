/**
 * A set of native connections that all sync the same documents: every attached document
 * is opened on every connection once it is ready, and a document the other side opens is
 * served if it is attached here. Dialers to relays and peers hold one connection at a
 * time; tabs and WebRTC peers hold one per peer.
 */
import { CloseCode } from '../shared/wire/close-codes.js'
import type { DocId } from '../shared/wire/doc-id.js'
import type { PeerInfo } from '../shared/wire/native-messages.js'
import type { Link } from '../shared/transport/link.js'
import { PeerConnection, type ControlMessage } from '../shared/sync/connection.js'
import { ProtocolError } from '../shared/errors.js'
import type { LocalDoc } from './local-doc.js'

/** Options of {@link LinkGroup}. */
export interface LinkGroupOptions {
  /** This replica, as told to the other side. */
  self: PeerInfo
  /**
   * Whether the group's links lead to relays this replica chose (its `relays`, or members a
   * relay's cluster map names): only then may the other side be durable, and only then does
   * a refusal from it count as the relay's (see `LocalDoc.refused`).
   */
  relays?: boolean
  /** The token presented when this side dials ('' for none). */
  token?: () => string | Promise<string>
  /** A control message (cluster map, redirect, signal). Default: a protocol error. */
  onControl?: (message: ControlMessage, connection: PeerConnection) => void
  /** A document was opened on a connection of the group. */
  onOpen?: (docId: DocId, connection: PeerConnection) => void
}

/** Backoff bounds for asking again for a document refused as unavailable. */
const RETRY_MIN_MS = 250
const RETRY_MAX_MS = 10_000

/** What the other side of a connection may do with a document: read it, also write it, or neither. */
export type Access = 'read' | 'write' | null

/** Handlers of one connection of a {@link LinkGroup}. */
export interface ConnectionHandlers {
  /** What the other side may do with each document; default: anything with attached ones. */
  access?: (docId: DocId) => Access
  /** The peer id the other side must give (a WebRTC peer's, as its relay vouched for it). */
  expectedPeerId?: string
  /** The other side's user as its relay vouched for it, stamped as `sub` on the presence it sets. */
  user?: string
  onReady?: (connection: PeerConnection) => void
  onClose?: (code: number, reason: string) => void
}

/** See the module comment. */
export class LinkGroup {
  private readonly docs = new Map<DocId, LocalDoc>()
  private readonly connections = new Set<PeerConnection>()
  private readonly access = new WeakMap<PeerConnection, (docId: DocId) => Access>()
  /** Refusals as unavailable, per connection and document, for the retry backoff. */
  private readonly refusals = new WeakMap<PeerConnection, Map<DocId, number>>()

  constructor (private readonly options: LinkGroupOptions) {}

  /** Documents attached. */
  get attached (): LocalDoc[] {
    return [...this.docs.values()]
  }

  /** Ready connections. */
  get ready (): PeerConnection[] {
    return [...this.connections].filter(connection => connection.ready)
  }

  /** Syncs `doc` over every connection from now on. */
  attach (doc: LocalDoc): void {
    this.docs.set(doc.docId, doc)
    for (const connection of this.ready) this.open(connection, doc)
  }

  /** Opens `doc` on `connection` if its other side may have it (and it is not quarantined: see `LocalDoc.quarantined`). */
  open (connection: PeerConnection, doc: LocalDoc): void {
    if (doc.quarantined || this.access.get(connection)?.(doc.docId) === null || connection.session(doc.docId)?.opener === true) return
    connection.open(doc)
    this.options.onOpen?.(doc.docId, connection)
  }

  /** The attached document `docId`, if any. */
  doc (docId: DocId): LocalDoc | undefined {
    return this.docs.get(docId)
  }

  /** Stops syncing `docId` (telling the other sides). */
  detach (docId: DocId): void {
    this.docs.delete(docId)
    for (const connection of this.connections) connection.closeDocument(docId)
  }

  /** Runs the native protocol on `link`, dialing (this side says HELLO) or accepting. */
  run (link: Link, role: 'dial' | 'accept', handlers: ConnectionHandlers = {}): PeerConnection {
    const { access, user } = handlers
    const connection: PeerConnection = new PeerConnection(link, {
      self: this.options.self,
      ...(role === 'dial' ? { token: () => this.options.token?.() ?? '', dialsRelay: this.options.relays === true } : {}),
      ...(handlers.expectedPeerId === undefined ? {} : { expectedPeerId: handlers.expectedPeerId }),
      serve: docId => {
        const doc = access?.(docId) === null ? undefined : this.docs.get(docId)
        if (doc !== undefined && !doc.quarantined) return { host: doc }
        connection.refuse(docId, CloseCode.notOpenHere, `${docId} is not open here`)
        return null
      },
      ...(access === undefined && user === undefined ? {} : { session: docId => ({ ...(access === undefined ? {} : { mayWrite: () => access(docId) === 'write' }), ...(user === undefined ? {} : { user }) }) }),
      onReady: () => {
        for (const doc of this.docs.values()) this.open(connection, doc)
        handlers.onReady?.(connection)
      },
      onControl: message => {
        if (this.options.onControl === undefined) throw new ProtocolError(`unexpected ${message.type} message`)
        this.options.onControl(message, connection)
      },
      onRefused: (docId, code, reason) => {
        // "Not open here" is how peers decline documents they do not have: nothing to report.
        if (code === CloseCode.notOpenHere) return
        this.docs.get(docId)?.refused(code, reason, connection.peer?.isRelay === true)
        // "Unavailable" (it failed to load, or to store an update) is worth asking again.
        if (code === CloseCode.documentUnavailable) this.retry(connection, docId)
      },
      onClose: (code, reason) => {
        this.connections.delete(connection)
        handlers.onClose?.(code, reason)
      }
    })
    this.connections.add(connection)
    if (access !== undefined) this.access.set(connection, access)
    return connection
  }

  /** Opens `docId` on `connection` again after a backoff that grows with each refusal on it. */
  private retry (connection: PeerConnection, docId: DocId): void {
    const attempts = this.refusals.get(connection)?.get(docId) ?? 0
    if (!this.refusals.has(connection)) this.refusals.set(connection, new Map())
    this.refusals.get(connection)!.set(docId, attempts + 1)
    const delay = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** attempts) * (0.5 + Math.random() / 2)
    setTimeout(() => {
      const doc = this.docs.get(docId)
      if (doc !== undefined && connection.ready) this.open(connection, doc)
    }, delay)
  }

  /** Closes every connection. */
  close (code: number, reason: string): void {
    for (const connection of this.connections) connection.close(code, reason)
  }
}
