/**
 * Relays sharing one PostgreSQL database (see `postgres/`): the database keeps every
 * document durable, and is how the relays find each other (leases); each document is served
 * by one relay at a time, which claims it (fenced by an epoch) before loading it. Native
 * clients get the map and redirects, stock clients and HTTP requests are passed to the
 * relay serving the document. There are no links between relays.
 */
import type { Logger } from 'pino'
import type { ClusterMember } from '../../shared/placement.js'
import type { CommitInfo } from '../../shared/storage/batched-store.js'
import type { PostgresNode, PostgresOptions } from '../postgres/postgres-node.js'
import type { DocumentRegistry } from '../documents/registry.js'
import { withoutPassword } from '../postgres/url.js'
import type { Deployment } from './deployment.js'

/** Connects to the database, prepares its schema, and returns the deployment; `pg` is loaded only here. */
export async function postgres (settings: PostgresOptions, relayId: string | undefined, logger: Logger, onCommit: (info: CommitInfo) => void): Promise<Deployment> {
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
      onEvict: doc => started().onEvict(doc)
    },
    attach: joined => { registry = joined },
    relayId: idOf,
    start: async url => {
      node = new PostgresNode(database, { selfId: idOf(url), url: settings.advertiseUrl ?? url, leaseMs: settings.leaseMs ?? DEFAULT_LEASE_MS }, registry!, logger)
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
      return { unavailable: node === null ? 'not registered with the database yet' : node.unavailable, relayLinks: { up: 0, inbound: 0 }, members: { total: members, linked: members } }
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

