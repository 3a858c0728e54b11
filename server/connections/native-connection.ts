/**
 * Serves one native (`petaldb.v3`) connection accepted by a relay (the common part is
 * `shared/listen/native-accept.ts`): a client's documents come from the registry, in a
 * cluster after the cluster map and, for documents this relay is no home of, a redirect;
 * another relay's connection is a relay link. A client's updates are acknowledged once
 * durable (in a cluster: on W relays); see shared/wire/PROTOCOL.md.
 */
import type { Logger } from 'pino'
import { CloseCode } from '../../shared/wire/close-codes.js'
import type { DocId } from '../../shared/wire/doc-id.js'
import type { Link } from '../../shared/transport/link.js'
import type { ClusterMap, ClusterMember } from '../../shared/placement.js'
import type { NativeMessage, PeerInfo } from '../../shared/wire/native-messages.js'
import { PeerConnection, type ConnectionOptions, type Served } from '../../shared/sync/connection.js'
import type { TokenVerifier } from '../../shared/listen/auth.js'
import { acceptNative } from '../../shared/listen/native-accept.js'
import type { PeerIds } from '../../shared/listen/peer-ids.js'
import type { DocumentRegistry } from '../documents/registry.js'
import { ProtocolError } from '../../shared/errors.js'
import { relaySignal } from './signal-relay.js'

/** What the relay tells native clients about its cluster, and how it routes their documents. */
export interface NativeRouting {
  /** The map sent to every client once its connection is up. */
  readonly map: ClusterMap
  /** The relay to send a client to, or null if this relay keeps `docId`. */
  redirectFor(docId: DocId): ClusterMember | null
  /** For membership that changes while relays run: calls `listener` with every new map; returns the unsubscription. */
  onMapChange?(listener: (map: ClusterMap) => void): () => void
}

/** How a relay handles links from other relays of its cluster. */
export interface RelayLinks {
  /** Verifies another relay's HELLO (cluster secret, membership); throws an AuthError or ProtocolError. */
  admit(hello: Extract<NativeMessage, { type: 'hello' }>): void
  /** A relay link is up. */
  accepted(connection: PeerConnection): void
  /** A relay link that was up closed. */
  closed(connection: PeerConnection): void
  /** Tombstones from the relay on a link. */
  tombstones(connection: PeerConnection, message: TombstonesMessage): void
}

/** Tombstones, which only relays of a cluster send each other. */
type TombstonesMessage = Extract<NativeMessage, { type: 'tombstones' }>

/** Options of {@link serveNativeLink}. */
export interface NativeConnectionOptions {
  registry: DocumentRegistry
  log: Logger
  /** This relay, as told to peers in WELCOME. */
  self: PeerInfo
  /** Verifies client tokens; null: the relay is open. */
  authenticator: TokenVerifier | null
  /** Documents one client connection may have open. */
  maxDocs: number
  /** The relay's client peer ids, one set for all its native connections: signals are routed and stamped by them. */
  peerIds: PeerIds
  /** In a cluster: the map sent to clients and where to redirect them. */
  routing?: NativeRouting
  /** In a cluster: links from other relays. Without it, a relay's HELLO is refused. */
  relayLinks?: RelayLinks
}

/** Per client connection, how to stop sending it new cluster maps. */
const mapSubscriptions = new WeakMap<PeerConnection, () => void>()

/** Serves the native protocol on `link`; see the module comment. */
export function serveNativeLink (link: Link, options: NativeConnectionOptions): PeerConnection {
  const { registry, log, routing, relayLinks, peerIds } = options
  return acceptNative(link, {
    self: options.self,
    authenticator: options.authenticator,
    log,
    maxDocs: options.maxDocs,
    // Clients are not asked to acknowledge what a relay sends them.
    numbered: false,
    serve: (docId, connection) => {
      const home = routing?.redirectFor(docId) ?? null
      if (home === null) return registry.hold(docId)
      connection.send({ type: 'redirect', docId, relayId: home.id, url: home.url })
      return null
    },
    onReady: connection => {
      if (routing === undefined) return
      connection.send({ type: 'cluster', map: routing.map })
      const unsubscribe = routing.onMapChange?.(map => connection.send({ type: 'cluster', map }))
      if (unsubscribe !== undefined) mapSubscriptions.set(connection, unsubscribe)
    },
    onClosed: connection => {
      mapSubscriptions.get(connection)?.()
      mapSubscriptions.delete(connection)
    },
    peerIds,
    onSignal: (message, from) => relaySignal(registry, peerIds, message, from),
    ...(relayLinks === undefined
      ? {}
      : { durablePeers: { admit: hello => relayLinks.admit(hello), policy: connection => relayPolicy(connection, registry, log, relayLinks.tombstones), accepted: relayLinks.accepted, closed: relayLinks.closed } })
  })
}

/**
 * How a relay link behaves, on either side. A document the other relay opens is loaded
 * but not held, so that relays opening each other's documents cannot keep them in memory
 * for ever (their updates keep it warm; its sessions end when it is evicted). Updates are
 * numbered both ways (replication waits for acknowledgements). What fails for one document
 * closes only that document there, with a docError telling the other relay why (it is
 * retried later); a message that names no document fails the link. Tombstones, the one
 * control message relays send each other, go to the cluster.
 */
function relayPolicy (connection: PeerConnection, registry: DocumentRegistry, log: Logger, tombstones: RelayLinks['tombstones']): Required<Pick<ConnectionOptions, 'serve' | 'session' | 'onError' | 'onRefused' | 'onControl'>> {
  return {
    serve: (docId): Served => ({
      host: registry.acquire(docId).then(doc => {
        registry.release(docId)
        return doc
      })
    }),
    session: () => ({ numbered: true }),
    onError: (error, docId) => {
      if (docId === null) return false
      log.warn({ err: error, doc: docId, peer: connection.peer?.peerId }, 'refusing a document on a connection')
      const code = (error as { code?: unknown }).code
      connection.refuse(docId, typeof code === 'number' ? code : CloseCode.documentUnavailable, error instanceof Error ? error.message : 'could not be handled')
      return true
    },
    onRefused: (docId, code) => {
      // A home that was away while the document was deleted learns it here, instead of serving its copy again.
      if (code !== CloseCode.deleted) return
      log.info({ doc: docId, peer: connection.peer?.peerId }, 'another relay deleted this document; deleting it here')
      registry.delete(docId).catch((error: unknown) => log.error({ err: error, doc: docId }, 'failed to delete a document another relay deleted'))
    },
    onControl: message => {
      if (message.type !== 'tombstones') throw new ProtocolError(`unexpected ${message.type} message on a relay link`)
      tombstones(connection, message)
    }
  }
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
  /** Tombstones from the other relay. */
  onTombstones: RelayLinks['tombstones']
}

/** Runs the dialing side of a link to another relay of the cluster over `link`. */
export function dialRelayLink (link: Link, options: RelayLinkOptions): PeerConnection {
  let policy: ReturnType<typeof relayPolicy> | null = null
  const connection: PeerConnection = new PeerConnection(link, {
    self: options.self,
    token: () => options.secret,
    dialsRelay: true,
    serve: docId => policy!.serve(docId),
    session: docId => policy!.session(docId),
    onReady: () => options.onReady(connection),
    onError: (error, docId) => policy!.onError(error, docId),
    onRefused: (docId, code, reason) => policy!.onRefused(docId, code, reason),
    onControl: message => policy!.onControl(message),
    onClose: options.onClose
  })
  policy = relayPolicy(connection, options.registry, options.log, options.onTombstones)
  return connection
}
