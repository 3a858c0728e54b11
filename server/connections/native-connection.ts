/**
 * Serves one native (`petaldb.v2`) connection accepted by a relay. A client's HELLO carries
 * its token; another relay's carries the cluster secret and says it is durable. Then any
 * number of documents are opened, synced and closed over the same link (one sync session
 * each, see `shared/sync/`). For a client, every message is authorized against its token,
 * which it can refresh with AUTH without dropping its documents; its updates are
 * acknowledged once durable (in a cluster: on W relays). See shared/wire/PROTOCOL.md.
 */
import type { Logger } from 'pino'
import { AuthError, LimitError, ProtocolError } from '../../shared/errors.js'
import { CloseCode } from '../../shared/wire/close-codes.js'
import type { DocId } from '../../shared/wire/doc-id.js'
import type { Link } from '../../shared/transport/link.js'
import type { ClusterMap, ClusterMember } from '../../shared/placement.js'
import type { NativeMessage, PeerInfo } from '../../shared/wire/native-messages.js'
import { PeerConnection, type Served } from '../../shared/sync/connection.js'
import type { Authenticator } from './auth.js'
import { ConnectionAuth } from './connection-auth.js'
import { HELLO_DEADLINE_MS, closeForError } from './closing.js'
import type { DocumentRegistry } from '../documents/registry.js'

/** What the relay tells native clients about its cluster, and how it routes their documents. */
export interface NativeRouting {
  map: ClusterMap
  /** The relay to send a client to, or null if this relay keeps `docId`. */
  redirectFor(docId: DocId): ClusterMember | null
}

/** How a relay handles links from other relays of its cluster. */
export interface RelayLinks {
  /** Verifies another relay's HELLO (cluster secret, membership); throws an AuthError or ProtocolError. */
  admit(hello: Extract<NativeMessage, { type: 'hello' }>): void
  /** A relay link is up. */
  accepted(connection: PeerConnection): void
  /** A relay link that was up closed. */
  closed(connection: PeerConnection): void
}

/** Options of {@link serveNativeLink}. */
export interface NativeConnectionOptions {
  registry: DocumentRegistry
  log: Logger
  /** This relay, as told to peers in WELCOME. */
  self: PeerInfo
  /** Verifies client tokens; null: the relay is open. */
  authenticator: Authenticator | null
  /** Documents one client connection may have open. */
  maxDocs: number
  /** In a cluster: the map sent to clients and where to redirect them. */
  routing?: NativeRouting
  /** In a cluster: links from other relays. Without it, a relay's HELLO is refused. */
  relayLinks?: RelayLinks
}

/** Serves the native protocol on `link`; see the module comment. */
export function serveNativeLink (link: Link, options: NativeConnectionOptions): PeerConnection {
  const { registry, log, routing } = options
  const auth = new ConnectionAuth(options.authenticator, error => fail(error))
  let fromRelay = false

  const fail = (error: unknown): void => {
    closeForError(link, error, log, { protocol: 'native' })
  }

  /** A document a client opened: authorized, routed, limited, then loaded (shared with every other opener). */
  const serveClient = (docId: DocId): Served | null => {
    if (!auth.canRead(docId)) {
      connection.refuse(docId, CloseCode.forbidden, `no access to ${docId}`)
      return null
    }
    const home = routing?.redirectFor(docId) ?? null
    if (home !== null) {
      connection.send({ type: 'redirect', docId, relayId: home.id, url: home.url })
      return null
    }
    if (connection.documents.length >= options.maxDocs) throw new LimitError(CloseCode.policyViolation, `more than ${options.maxDocs} documents open on one connection`)
    return { host: registry.acquire(docId), release: () => registry.release(docId) }
  }

  const connection: PeerConnection = new PeerConnection(link, {
    self: options.self,
    admit: async hello => {
      clearTimeout(helloDeadline)
      if (hello.peer.durable) {
        if (options.relayLinks === undefined) throw new AuthError(CloseCode.unauthorized, 'this relay is not in a cluster')
        options.relayLinks.admit(hello)
        fromRelay = true
        return
      }
      await auth.authenticate(hello.token)
    },
    serve: docId => fromRelay ? serveForRelay(registry, docId) : serveClient(docId),
    session: docId => fromRelay
      ? RELAY_SESSION
      // Clients are not asked to acknowledge what they receive.
      : { numbered: false, mayWrite: () => auth.canWrite(docId), ...(auth.user === undefined ? {} : { user: auth.user }) },
    onReady: () => {
      if (fromRelay) return options.relayLinks!.accepted(connection)
      if (routing !== undefined) connection.send({ type: 'cluster', map: routing.map })
    },
    onControl: message => {
      if (message.type !== 'auth' || fromRelay) throw new ProtocolError(`unexpected ${message.type} message from a ${fromRelay ? 'relay' : 'client'}`)
      auth.authenticate(message.token).then(reauthorize, fail)
    },
    onError: (error, docId) => {
      // A refused write closes only that document.
      if (fromRelay || (docId !== null && error instanceof AuthError && error.code === CloseCode.forbidden)) return refuseForError(connection, error, docId, log)
      fail(error)
      return true
    },
    onClose: () => {
      clearTimeout(helloDeadline)
      auth.dispose()
      if (fromRelay && connection.peer !== null) options.relayLinks!.closed(connection)
    }
  })

  /** A refreshed token may cover fewer documents: close those it no longer allows. */
  const reauthorize = (): void => {
    for (const docId of connection.documents) {
      if (!auth.canRead(docId)) connection.refuse(docId, CloseCode.forbidden, `the new token does not allow ${docId}`)
    }
  }

  // A connection that never says hello would otherwise be held open by keep-alive pings.
  const helloDeadline = setTimeout(() => { if (connection.peer === null) fail(new AuthError(CloseCode.unauthorized, 'no hello in time')) }, HELLO_DEADLINE_MS)
  return connection
}

/** Sessions with another relay: numbered both ways (replication waits for acknowledgements). */
const RELAY_SESSION = { numbered: true }

/**
 * A document another relay opened: loaded but not held, so that relays opening each
 * other's documents cannot keep them in memory for ever (their updates keep it warm); its
 * sessions end when it is evicted.
 */
function serveForRelay (registry: DocumentRegistry, docId: DocId): Served {
  return {
    host: registry.acquire(docId).then(doc => {
      registry.release(docId)
      return doc
    })
  }
}

/**
 * What fails for one document on a relay link closes only that document there, with a
 * docError telling the other relay why (its handshake is retried later); a message that
 * names no document fails the link.
 */
function refuseForError (connection: PeerConnection, error: unknown, docId: DocId | null, log: Logger): boolean {
  if (docId === null) return false
  log.warn({ err: error, doc: docId, peer: connection.peer?.peerId }, 'refusing a document on a connection')
  const code = (error as { code?: unknown }).code
  connection.refuse(docId, typeof code === 'number' ? code : CloseCode.documentUnavailable, error instanceof Error ? error.message : 'could not be handled')
  return true
}

/** Options of {@link dialRelayLink}. */
export interface RelayLinkOptions {
  registry: DocumentRegistry
  log: Logger
  /** This relay. */
  self: PeerInfo
  /** The cluster secret, presented in HELLO. */
  secret: string
  onReady: (connection: PeerConnection) => void
  onClose: (code: number, reason: string) => void
}

/** Runs the dialing side of a link to another relay of the cluster over `link`. */
export function dialRelayLink (link: Link, options: RelayLinkOptions): PeerConnection {
  const connection: PeerConnection = new PeerConnection(link, {
    self: options.self,
    token: () => options.secret,
    serve: docId => serveForRelay(options.registry, docId),
    session: () => RELAY_SESSION,
    onReady: () => options.onReady(connection),
    onError: (error, docId) => refuseForError(connection, error, docId, options.log),
    onClose: options.onClose
  })
  return connection
}
