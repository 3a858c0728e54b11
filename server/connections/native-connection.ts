/**
 * Serves one native (`petaldb.v3`) connection accepted by a relay (the common part is
 * `shared/listen/native-accept.ts`): a client's documents come from the registry, in a
 * cluster after the cluster map and, for documents this relay is no home of, a redirect;
 * another relay's connection is a relay link, handled by the deployment's policy. A client's
 * updates are acknowledged once durable (in a cluster: on W relays); see shared/wire/PROTOCOL.md.
 */
import type { Logger } from 'pino'
import type { DocId } from '../../shared/wire/doc-id.js'
import type { Link } from '../../shared/transport/link.js'
import type { ClusterMap, ClusterMember } from '../../shared/placement.js'
import type { PeerInfo } from '../../shared/wire/native-messages.js'
import type { PeerConnection } from '../../shared/sync/connection.js'
import type { TokenVerifier } from '../../shared/listen/auth.js'
import { acceptNative, type RelayPeers } from '../../shared/listen/native-accept.js'
import type { PeerIds } from '../../shared/listen/peer-ids.js'
import type { DocumentRegistry } from '../documents/registry.js'
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

/** Options of {@link serveNativeLink}. */
export interface NativeConnectionOptions {
  registry: DocumentRegistry
  logger: Logger
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
  /** In a cluster: how links from other relays are admitted and served. Without it, a relay's HELLO is refused. */
  relayPeers?: RelayPeers
}

/** Per client connection, how to stop sending it new cluster maps. */
const mapSubscriptions = new WeakMap<PeerConnection, () => void>()

/** Serves the native protocol on `link`; see the module comment. */
export function serveNativeLink (link: Link, options: NativeConnectionOptions): PeerConnection {
  const { registry, logger, routing, relayPeers, peerIds } = options
  return acceptNative(link, {
    self: options.self,
    authenticator: options.authenticator,
    logger,
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
    ...(relayPeers === undefined ? {} : { relayPeers })
  })
}
