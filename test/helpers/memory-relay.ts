/**
 * A relay core (registry + native protocol) reached over in-memory Links, for fast replica
 * tests: it can be taken down and brought back, and its delivery policy can delay,
 * duplicate or drop messages.
 */
import { MemoryStore } from '../../shared/storage/memory-store.js'
import { deliverInOrder, linkPair, type DeliveryPolicy, type Link } from '../../shared/transport/link.js'
import { DocumentRegistry } from '../../server/documents/registry.js'
import { serveNativeLink } from '../../server/connections/native-connection.js'
import { PeerIds } from '../../shared/listen/peer-ids.js'
import { captureLog } from './log-capture.js'

export interface MemoryRelay {
  store: MemoryStore
  connect: (url: string) => Promise<Link>
  /** Refuses new connections and cuts the open ones. */
  down(): void
  up(): void
  /** Cuts every open connection (clients reconnect). */
  cut(): void
  policy: DeliveryPolicy
}

export function memoryRelay (): MemoryRelay {
  const store = new MemoryStore()
  const logger = captureLog('warn').logger
  const registry = new DocumentRegistry({ store, logger, idleMs: 60_000 })
  const peerIds = new PeerIds()
  const links = new Set<Link>()
  let isUp = true
  const relay: MemoryRelay = {
    store,
    policy: deliverInOrder,
    async connect () {
      if (!isUp) throw new Error('relay is down')
      const [client, server] = linkPair((message, deliver) => relay.policy(message, deliver))
      links.add(client)
      serveNativeLink(server, { registry, logger, self: { peerId: 'memory', isRelay: true }, authenticator: null, maxDocs: 1000, peerIds })
      const onClose = server.onClose
      server.onClose = (code, reason) => { links.delete(client); onClose.call(server, code, reason) }
      return client
    },
    down () { isUp = false; relay.cut() },
    up () { isUp = true },
    cut () { for (const link of [...links]) link.close(1006, 'cut') }
  }
  return relay
}
