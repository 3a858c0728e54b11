/**
 * The accepting side of a native (`petaldb.v3`) connection, the same on a relay and on a
 * replica that listens for peers. A client's HELLO carries its token; then every message
 * is authorized against it (open needs read access, an update write access: a refused
 * write closes only that document), the client can refresh it with AUTH without dropping
 * its documents, and its expiry ends the connection. A client's peer id is bound to its
 * connection (see `peer-ids.ts`). A relay's HELLO (another relay of a cluster) is
 * handed to the relay's own policy. Hostile input closes the connection; when it is about
 * one document, that document is refused first, so that an honest peer learns which one.
 */
import { AuthError, DocDeletedError, LimitError, MovedError, ProtocolError, StorageError } from '../errors.js'
import { CloseCode } from '../wire/close-codes.js'
import type { DocId } from '../wire/doc-id.js'
import type { NativeMessage, PeerInfo } from '../wire/native-messages.js'
import type { Link } from '../transport/link.js'
import { PeerConnection, type ConnectionOptions, type ControlMessage, type Served } from '../sync/connection.js'
import type { TokenVerifier } from './auth.js'
import { ConnectionAuth } from './connection-auth.js'
import type { BoundClient, PeerIds } from './peer-ids.js'
import { HELLO_DEADLINE_MS, closeForError } from './closing.js'
import type { Logger } from './logger.js'

/** How a relay handles a relay (another relay of its cluster) on an accepted connection. */
export interface RelayPeers {
  /** Verifies the peer's HELLO (cluster secret, membership); throws an AuthError or ProtocolError. */
  admit(hello: Extract<NativeMessage, { type: 'hello' }>): void
  /** How `connection` behaves once the peer is admitted. */
  policy(connection: PeerConnection): Required<Pick<ConnectionOptions, 'serve' | 'session' | 'onError' | 'onRefused' | 'onControl'>>
  /** The connection is up. */
  accepted(connection: PeerConnection): void
  /** The connection, once up, closed. */
  closed(connection: PeerConnection): void
}

/** Options of {@link acceptNative}. */
export interface NativeAcceptOptions {
  /** This node, as told to peers in WELCOME. */
  self: PeerInfo
  /** Verifies client tokens; null: anyone may read and write. */
  authenticator: TokenVerifier | null
  logger: Logger
  /** Documents one client connection may have open (1008 beyond). */
  maxDocs: number
  /** Whether updates sent to clients are numbered for them to acknowledge (replicas want to know what peers hold; relays do not). */
  numbered: boolean
  /**
   * Serves a document a client may read and opened; return null having answered it some
   * other way (a redirect). `connection` is the client's.
   */
  serve: (docId: DocId, connection: PeerConnection) => Served | null
  /** The client's connection is up (a relay sends its cluster map). */
  onReady?: (connection: PeerConnection) => void
  /** The client's connection, once up, closed. */
  onClosed?: (connection: PeerConnection) => void
  /**
   * Binds client peer ids to their connections: a client's HELLO claiming an id another
   * live connection holds is refused (4409). Without it, ids are not checked.
   */
  peerIds?: PeerIds
  /**
   * WebRTC signaling from a client, `from` as its HELLO bound it; throw (a ProtocolError or
   * LimitError) to close the client's connection. Without it, a signal is a protocol error.
   */
  onSignal?: (message: Extract<NativeMessage, { type: 'signal' }>, from: BoundClient) => void
  /** Relays' connections; without it, a HELLO that says it is a relay is refused. */
  relayPeers?: RelayPeers
}

/** Serves the accepting side of the native protocol on `link`; see the module comment. */
export function acceptNative (link: Link, options: NativeAcceptOptions): PeerConnection {
  const { logger, relayPeers } = options
  const auth = new ConnectionAuth(options.authenticator, error => fail(error))
  let durable: ReturnType<RelayPeers['policy']> | null = null
  /** The client, once admitted (null for a relay). */
  let client: BoundClient | null = null

  const fail = (error: unknown): void => {
    closeForError(link, error, logger, { protocol: 'native' })
  }

  const serveClient = (docId: DocId): Served | null => {
    if (!auth.canRead(docId)) {
      connection.refuse(docId, CloseCode.forbidden, `no access to ${docId}`)
      return null
    }
    if (connection.documents.length >= options.maxDocs) {
      // A limit of the connection, not of this document: the link closes, no document is refused.
      fail(new LimitError(CloseCode.policyViolation, `more than ${options.maxDocs} documents open on one connection`))
      return null
    }
    return options.serve(docId, connection)
  }

  const bindClient = (peerId: string): void => {
    // A connection that closed while its token was being verified must not hold the id.
    if (connection.closed) return
    client = { peerId, connection, auth }
    if (options.peerIds?.bind(client) === false) throw new AuthError(CloseCode.peerIdInUse, `peer id in use by another live connection: ${peerId}`)
  }

  const control = (message: ControlMessage): void => {
    if (durable !== null) return durable.onControl(message)
    // A client's control messages concern its link, not a document: what fails closes the link and refuses no document.
    try {
      if (message.type === 'signal' && options.onSignal !== undefined) return options.onSignal(message, client!)
      if (message.type !== 'auth') throw new ProtocolError(`unexpected ${message.type} message`)
      auth.authenticate(message.token).then(reauthorize, fail)
    } catch (error) {
      fail(error)
    }
  }

  /** A refreshed token may cover fewer documents: close those it no longer allows. */
  const reauthorize = (): void => {
    for (const docId of connection.documents) {
      if (!auth.canRead(docId)) connection.refuse(docId, CloseCode.forbidden, `the new token does not allow ${docId}`)
    }
  }

  const connection: PeerConnection = new PeerConnection(link, {
    self: options.self,
    admit: async hello => {
      clearTimeout(helloDeadline)
      if (!hello.peer.isRelay) {
        await auth.authenticate(hello.token)
        return bindClient(hello.peer.peerId)
      }
      if (relayPeers === undefined) throw new AuthError(CloseCode.unauthorized, 'relays are not accepted here')
      relayPeers.admit(hello)
      durable = relayPeers.policy(connection)
    },
    serve: docId => durable !== null ? durable.serve(docId) : serveClient(docId),
    session: docId => durable !== null
      ? durable.session(docId)
      : { numbered: options.numbered, mayWrite: () => auth.canWrite(docId), ...(auth.user === undefined ? {} : { user: auth.user }) },
    onReady: () => durable !== null ? relayPeers!.accepted(connection) : options.onReady?.(connection),
    onControl: control,
    onError: (error, docId) => {
      if (durable !== null && durable.onError(error, docId) === true) return true
      // A document another relay serves now moves there alone.
      if (docId !== null && error instanceof MovedError) {
        connection.redirect(docId, error.relay)
        return true
      }
      // A refused write, a document that cannot be stored now, and a deleted one, close only that document.
      if (docId !== null && ((error instanceof AuthError && error.code === CloseCode.forbidden) || error instanceof StorageError || error instanceof DocDeletedError)) {
        connection.refuse(docId, error.code, error.message)
        return true
      }
      // Hostile input about one document (an invalid update, a document's limit) closes the
      // link, but names the document first: an honest replica whose store holds an update
      // this node refuses learns which document to set aside.
      if (docId !== null && (error instanceof ProtocolError || error instanceof LimitError)) connection.refuse(docId, error.code, error.message)
      fail(error)
      return true
    },
    onRefused: (docId, code, reason) => durable?.onRefused(docId, code, reason),
    onClose: () => {
      clearTimeout(helloDeadline)
      auth.dispose()
      if (client !== null) options.peerIds?.release(client)
      if (connection.peer === null) return
      if (durable !== null) relayPeers!.closed(connection)
      else options.onClosed?.(connection)
    }
  })

  // A connection that never says hello would otherwise be held open by keep-alive pings.
  const helloDeadline = setTimeout(() => { if (connection.peer === null) fail(new AuthError(CloseCode.unauthorized, 'no hello in time')) }, HELLO_DEADLINE_MS)
  return connection
}
