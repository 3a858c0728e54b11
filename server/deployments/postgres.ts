/**
 * Relays sharing one PostgreSQL database (see `postgres/`): the database keeps every
 * document durable, and is how the relays find each other (leases); each document is served
 * by one relay at a time, which claims it (fenced by an epoch) before loading it. Native
 * clients get the map and redirects, stock clients and HTTP requests are passed to the
 * relay serving the document. There are no links between relays. Documents follow load:
 * each relay publishes its own, and one well above the mean hands documents over (see
 * postgres/load-placement.ts).
 */
import type { Logger } from 'pino'
import type { ClusterMember } from '../../shared/placement.js'
import type { CommitInfo } from '../../shared/storage/batched-store.js'
import type { PostgresNode, PostgresOptions } from '../postgres/postgres-node.js'
import type { DocumentRegistry } from '../documents/registry.js'
import { withoutPassword } from '../postgres/url.js'
import { placementSettings } from '../placement/options.js'
import type { Deployment, RelayCounts } from './deployment.js'
import { NO_LOAD } from '../placement/load-report.js'

/** Connects to the database, prepares its schema, and returns the deployment; `pg` is loaded only here. */
export async function postgres (settings: PostgresOptions, relayId: string | undefined, logger: Logger, onCommit: (info: CommitInfo) => void): Promise<Deployment> {
  // A bad setting stops the relay before it touches the database.
  placementSettings(settings.placement === false ? {} : settings.placement)
  const { Database } = await import('../postgres/database.js')
  const { migrate } = await import('../postgres/schema.js')
  const { PostgresStore } = await import('../../shared/storage/postgres-store.js')
  const { PostgresNode, DEFAULT_LEASE_MS } = await import('../postgres/postgres-node.js')
  const database = new Database(settings.url, { logger })
  try {
    await migrate(database)
  } catch (error) {
    await database.close()
    throw new Error(`cannot prepare the PostgreSQL database: ${(error as Error).message}`)
  }
  let registry: DocumentRegistry | null = null
  let counts: RelayCounts | null = null
  let node: PostgresNode | null = null
  const started = (): PostgresNode => {
    if (node === null) throw new Error('the PostgreSQL deployment is used before it started')
    return node
  }
  const store = new PostgresStore(database, { onCommit, epochOf: docId => node?.epochOf(docId) ?? null })
  const idOf = (url: string): string => relayId ?? url
  return {
    store,
    documents: {
      claim: docId => started().claim(docId),
      onLoad: doc => node?.onLoad(doc),
      onEvict: doc => started().onEvict(doc),
      received: (docId, bytes) => node?.received(docId, bytes)
    },
    attach: (joined, relayCounts) => {
      registry = joined
      counts = relayCounts ?? null
    },
    relayId: idOf,
    start: async url => {
      node = new PostgresNode(database, {
        selfId: idOf(url),
        url: settings.advertiseUrl ?? url,
        leaseMs: settings.leaseMs ?? DEFAULT_LEASE_MS,
        ...(settings.placement === undefined ? {} : { placement: settings.placement }),
        ...(counts === null ? {} : { connections: () => counts!.connections() })
      }, registry!, logger)
      try {
        await node.start()
      } catch (error) {
        throw new Error(`cannot register with the PostgreSQL database: ${(error as Error).message}`)
      }
    },
    get routing () {
      return started().routing
    },
    relayPeers: null,
    proxyTargets: docId => started().proxyTargets(docId),
    docsRouting: (self: ClusterMember) => ({ homesOf: docId => started().proxyTargets(docId)?.slice(0, 1) ?? [self], listFrom: null, selfId: self.id }),
    health: () => {
      const members = node?.membership.members.length ?? 0
      const load = node?.loadFigures ?? NO_LOAD
      return { unavailable: node === null ? 'not registered with the database yet' : node.unavailable, relayLinks: { up: 0, inbound: 0 }, members: { total: members, linked: members }, load }
    },
    describe: () => `as ${node?.membership.selfId ?? relayId ?? '?'} on PostgreSQL ${withoutPassword(settings.url)}`,
    stop: async () => {},
    close: async () => {
      try {
        await store.close()
        // After the last commit: the others take over at once, and load all of it.
        await node?.close()
      } finally {
        await database.close()
      }
    }
  }
}

