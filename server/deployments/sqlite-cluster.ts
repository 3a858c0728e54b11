/**
 * A relay of a cluster on SQLite: its own data directory, and the members' list it was
 * started with (see `cluster/`). Each document has R homes that keep a copy; a client's
 * update is acknowledged once W of them committed it; native clients get the cluster map and
 * redirects, stock clients and HTTP requests are passed to a home.
 */
import type { Logger } from 'pino'
import type { ClusterOptions } from '../cluster/cluster.js'
import { ClusterNode } from '../cluster/cluster-node.js'
import type { DocumentRegistry } from '../documents/registry.js'
import type { Deployment } from './deployment.js'
import { closeOwned, type OwnedStore } from './standalone.js'

/** See the module comment. `dataDir`: where the rebalancer keeps what it moved (none for a store the app passed). */
export function sqliteCluster (options: ClusterOptions, owned: OwnedStore, dataDir: string | undefined, logger: Logger): Deployment {
  let node: ClusterNode | null = null
  const joined = (): ClusterNode => {
    if (node === null) throw new Error('the cluster deployment is used before it joined a registry')
    return node
  }
  return {
    store: owned.store,
    documents: {
      onLoad: doc => joined().onLoad(doc),
      onEvict: doc => joined().onEvict(doc),
      onDelete: (docId, deletedAt) => joined().onDelete(docId, deletedAt),
      gate: { ready: docId => joined().gate.ready(docId), whenReady: docId => joined().gate.whenReady(docId) }
    },
    attach: (registry: DocumentRegistry) => { node = new ClusterNode(options, registry, owned.store, logger) },
    relayId: () => options.selfId,
    start: async () => joined().start(dataDir),
    get routing () {
      return joined().routing
    },
    get relayPeers () {
      return joined().relayPeers
    },
    proxyTargets: docId => joined().proxyTargets(docId),
    docsRouting: () => {
      const { cluster } = joined()
      return { homesOf: docId => cluster.homesOf(docId), listFrom: cluster.members, selfId: cluster.selfId }
    },
    health: () => {
      const { cluster, linkCounts } = joined()
      // A cluster relay serves whenever it runs: its disk is its own.
      return { unavailable: null, relayLinks: linkCounts, members: { total: cluster.members.length, linked: linkCounts.up + 1 } }
    },
    describe: () => `as ${options.selfId} of a ${options.members.length}-relay cluster (${owned.where})`,
    stop: async () => { await node?.close() },
    close: () => closeOwned(owned)
  }
}
