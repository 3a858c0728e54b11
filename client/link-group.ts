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
  /** The token presented when this side dials ('' for none). */
  token?: () => string | Promise<string>
  /** A control message (cluster map, redirect, signal). Default: a protocol error. */
  onControl?: (message: ControlMessage, connection: PeerConnection) => void
}

/** Handlers of one connection of a {@link LinkGroup}. */
export interface ConnectionHandlers {
  onReady?: (connection: PeerConnection) => void
  onClose?: (code: number, reason: string) => void
}

/** See the module comment. */
export class LinkGroup {
  private readonly docs = new Map<DocId, LocalDoc>()
  private readonly connections = new Set<PeerConnection>()

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
    for (const connection of this.ready) connection.open(doc)
  }

  /** Stops syncing `docId` (telling the other sides). */
  detach (docId: DocId): void {
    this.docs.delete(docId)
    for (const connection of this.connections) connection.closeDocument(docId)
  }

  /** Runs the native protocol on `link`, dialing (this side says HELLO) or accepting. */
  run (link: Link, role: 'dial' | 'accept', handlers: ConnectionHandlers = {}): PeerConnection {
    const connection: PeerConnection = new PeerConnection(link, {
      self: this.options.self,
      ...(role === 'dial' ? { token: () => this.options.token?.() ?? '' } : {}),
      serve: docId => {
        const doc = this.docs.get(docId)
        if (doc !== undefined) return { host: doc }
        connection.refuse(docId, CloseCode.notOpenHere, `${docId} is not open here`)
        return null
      },
      onReady: () => {
        for (const doc of this.docs.values()) connection.open(doc)
        handlers.onReady?.(connection)
      },
      onControl: message => {
        if (this.options.onControl === undefined) throw new ProtocolError(`unexpected ${message.type} message`)
        this.options.onControl(message, connection)
      },
      // "Not open here" is how peers decline documents they do not have: nothing to report.
      onRefused: (docId, code, reason) => { if (code !== CloseCode.notOpenHere) this.docs.get(docId)?.refused(code, reason, connection.peer?.durable === true) },
      onClose: (code, reason) => {
        this.connections.delete(connection)
        handlers.onClose?.(code, reason)
      }
    })
    this.connections.add(connection)
    return connection
  }

  /** Closes every connection. */
  close (code: number, reason: string): void {
    for (const connection of this.connections) connection.close(code, reason)
  }
}
