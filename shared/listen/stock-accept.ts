/**
 * Serves an admitted stock y-websocket client (see `listener.ts`) one document
 * (`ws://host/<docId>`), the same on a relay and on a replica that listens for peers: the
 * session logic of every native peer, with y-websocket framing and the access the client's
 * token grants, until the token expires. The server is both answerer (the client's step 1
 * gets a step 2) and opener: it sends its own step 1 to a client that may write, whose
 * step 2 brings what the client had offline. A client that may only read is not asked, and
 * is refused (4403) if it sends a change anyway. Frames that arrive while the document
 * loads wait, in order. Every frame is decoded inside error handling; a bad one closes this
 * connection only, before anything is applied or forwarded.
 *
 * A relay holds thousands of idle stock connections, so each is one object that is its
 * session's options too (their callbacks are its methods), rather than a closure per callback.
 */
import type { Link } from '../transport/link.js'
import { ywsFraming, ywsInput, type Framing } from '../sync/framing.js'
import { SyncSession, type DocumentHost, type SessionOptions } from '../sync/session.js'
import type { DocId } from '../wire/doc-id.js'
import type { PeerInfo } from '../wire/native-messages.js'
import { decodeYMessage } from '../wire/y-messages.js'
import { canWrite, type Grant, type TokenVerifier } from './auth.js'
import { closeForError } from './closing.js'
import { ConnectionAuth } from './connection-auth.js'
import type { StockClient } from './listener.js'
import type { Logger } from './logger.js'

/** Who a stock client is to its session: not a relay, and without a peer id. */
const STOCK_PEER: PeerInfo = Object.freeze({ peerId: '', isRelay: false })

/** The connection on each link, for link handlers shared by every connection (links call them as methods). */
const connections = new WeakMap<Link, StockConnection>()

function onLinkMessage (this: Link, frame: Uint8Array): void {
  connections.get(this)?.receive(frame)
}

function onLinkClose (this: Link): void {
  connections.get(this)?.closed()
}

/** Where stock connections get their documents: one object for all of them (a relay's registry, a replica). */
export interface StockDocuments {
  /** Holds `docId` for a connection. If a promise and it rejects, the acquisition is void. */
  acquire(docId: DocId): DocumentHost | Promise<DocumentHost>
  /** Gives back one acquisition of `docId`. */
  release(docId: DocId): void
}

/** What every stock connection of a relay (or a replica that listens for peers) shares. */
export interface StockContext {
  documents: StockDocuments
  /** Verifies tokens; null: the listener is open (and stamps no user on presence). */
  authenticator: TokenVerifier | null
  logger: Logger
  /** A connection's link has closed. */
  onClosed?: () => void
}

/** Serves `client`'s document on `link`; see the module comment. */
export function acceptStock (link: Link, client: StockClient, context: StockContext): void {
  const connection = new StockConnection(link, client, context)
  connections.set(link, connection)
  link.onMessage = onLinkMessage
  link.onClose = onLinkClose
  connection.start()
}

/** One stock client's connection, and its session's options; see the module comment. */
class StockConnection implements SessionOptions {
  readonly docId: DocId
  private readonly grant: Grant
  /** Only for a token that expires: ends the session when it does. */
  private readonly expiry: ConnectionAuth | null = null
  private readonly session: SyncSession
  /** Whether the connection holds its document (acquired, not released, and the load did not fail). */
  private holding = false

  constructor (private readonly link: Link, client: StockClient, private readonly context: StockContext) {
    this.docId = client.docId
    this.grant = client.grant
    this.session = new SyncSession(this)
    if (client.grant.expiresAt !== null) {
      this.expiry = new ConnectionAuth(context.authenticator, error => this.onError(error))
      this.expiry.adopt(client.grant)
    }
  }

  // Constants and what follows from the context as getters: fields would cost every connection a slot each.
  get user (): string | undefined {
    return this.context.authenticator === null ? undefined : this.grant.sub
  }

  get peer (): PeerInfo {
    return STOCK_PEER
  }

  get framing (): Framing {
    return ywsFraming
  }

  /** y-websocket clients get every update from the start. */
  get liveOnBind (): boolean {
    return true
  }

  /** Asks a client that may write for what it has, and binds the document once loaded. */
  start (): void {
    if (this.session.ended) return // the token expired already
    if (this.mayWrite()) this.session.open()
    const host = this.context.documents.acquire(this.docId)
    this.holding = true
    if (!(host instanceof Promise)) return this.session.bind(host)
    host.then(loaded => this.session.bind(loaded), (error: unknown) => {
      this.holding = false // a failed load holds nothing
      this.fail(error)
      this.session.end()
    })
  }

  send (frame: Uint8Array): void {
    this.link.send(frame)
  }

  charge (bytes: number): void {
    this.link.charge?.(bytes)
  }

  mayWrite (): boolean {
    return canWrite(this.grant, this.docId)
  }

  /** A frame failed, or the token expired: the link closes with the error's code. */
  onError (error: unknown): void {
    this.fail(error)
    this.session.end()
    this.release()
  }

  /** A frame from the client. */
  receive (frame: Uint8Array): void {
    if (this.session.ended) return
    let input
    try {
      input = ywsInput(decodeYMessage(frame))
    } catch (error) {
      this.onError(error)
      return
    }
    if (input !== null) this.session.receive(input)
  }

  /** The link closed, from either side. */
  closed (): void {
    this.expiry?.dispose()
    this.session.end()
    this.release()
    this.context.onClosed?.()
  }

  private fail (error: unknown): void {
    closeForError(this.link, error, this.context.logger, { doc: this.docId })
  }

  private release (): void {
    if (!this.holding) return
    this.holding = false
    this.context.documents.release(this.docId)
  }
}
