/**
 * How a link between two relays of a cluster behaves, on either side: the accepting side's
 * policy for an admitted relay (see `shared/listen/native-accept.ts`), and the dialing side.
 */
import type { Logger } from 'pino'
import { CloseCode } from '../../shared/wire/close-codes.js'
import type { Link } from '../../shared/transport/link.js'
import type { NativeMessage, PeerInfo } from '../../shared/wire/native-messages.js'
import { PeerConnection, type ConnectionOptions, type Served } from '../../shared/sync/connection.js'
import { PetalError, ProtocolError } from '../../shared/errors.js'
import type { DocumentRegistry } from '../documents/registry.js'

/** Tombstones, which only relays of a cluster send each other. */
export type TombstonesMessage = Extract<NativeMessage, { type: 'tombstones' }>

/** What a relay does with the tombstones another relay sends on `connection`. */
export type OnTombstones = (connection: PeerConnection, message: TombstonesMessage) => void

/**
 * How a relay link behaves, on either side. A document the other relay opens is loaded
 * but not held, so that relays opening each other's documents cannot keep them in memory
 * for ever (their updates keep it warm; its sessions end when it is evicted). Updates are
 * numbered both ways (replication waits for acknowledgements). What fails for one document
 * closes only that document there, with a docError telling the other relay why (it is
 * retried later); a message that names no document fails the link. Tombstones, the one
 * control message relays send each other, go to the cluster.
 */
export function relayPolicy (connection: PeerConnection, registry: DocumentRegistry, logger: Logger, tombstones: OnTombstones): Required<Pick<ConnectionOptions, 'serve' | 'session' | 'onError' | 'onRefused' | 'onControl'>> {
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
      logger.warn({ err: error, doc: docId, peer: connection.peer?.peerId }, 'refusing a document on a connection')
      connection.refuse(docId, error instanceof PetalError ? error.code : CloseCode.documentUnavailable, error instanceof Error ? error.message : 'could not be handled')
      return true
    },
    onRefused: (docId, code) => {
      // A home that was away while the document was deleted learns it here, instead of serving its copy again.
      if (code !== CloseCode.deleted) return
      logger.info({ doc: docId, peer: connection.peer?.peerId }, 'another relay deleted this document; deleting it here')
      registry.delete(docId).catch((error: unknown) => logger.error({ err: error, doc: docId }, 'failed to delete a document another relay deleted'))
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
  logger: Logger
  /** This relay. */
  self: PeerInfo
  /** The cluster secret, presented in HELLO. */
  secret: string
  onReady: (connection: PeerConnection) => void
  onClose: (code: number, reason: string) => void
  /** Tombstones from the other relay. */
  onTombstones: OnTombstones
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
  policy = relayPolicy(connection, options.registry, options.logger, options.onTombstones)
  return connection
}
