/**
 * A relay's membership in a cluster, composed of the placement rules (Cluster), the links
 * to the other relays (PeerLinks), replication and write quorum (Replicator) and the moves
 * after a membership change (Rebalancer). The relay asks it where documents live.
 */
import type { Logger } from 'pino'
import type { DocId } from '../../shared/wire/doc-id.js'
import type { Link } from '../../shared/transport/link.js'
import type { ClusterMember } from '../../shared/placement.js'
import type { DocStore } from '../../shared/storage/store.js'
import { Cluster, type ClusterOptions } from './cluster.js'
import type { NativeConnectionOptions } from '../connections/native-connection.js'
import { PeerLinks } from './peer-links.js'
import { Rebalancer } from './rebalancer.js'
import type { DocumentRegistry } from '../documents/registry.js'
import type { RelayDocument } from '../documents/relay-document.js'
import { Replicator } from './replicator.js'

/** See the module comment. */
export class ClusterNode {
  readonly cluster: Cluster
  private readonly replicator: Replicator
  private readonly links: PeerLinks
  private rebalancer: Rebalancer | null = null

  constructor (options: ClusterOptions, private readonly registry: DocumentRegistry, private readonly log: Logger) {
    this.cluster = new Cluster(options)
    this.replicator = new Replicator(this.cluster, registry, log)
    this.links = new PeerLinks(this.cluster, {
      onUp: peerId => this.replicator.onPeerUp(peerId),
      onDown: peerId => this.replicator.onPeerDown(peerId),
      onMessage: (peerId, message) => this.replicator.onMessage(peerId, message)
    }, log)
    this.replicator.links = this.links
  }

  /** Registry hook: a document loaded. */
  onLoad (doc: RelayDocument): void {
    this.replicator.attach(doc)
  }

  /** Registry hook: a document was evicted. */
  onEvict (doc: RelayDocument): void {
    this.replicator.detach(doc)
  }

  /** Starts dialing peers and, if the member list changed, moving documents. */
  start (store: DocStore, dataDir: string | undefined): void {
    this.links.start()
    this.rebalancer = new Rebalancer({
      cluster: this.cluster,
      store,
      registry: this.registry,
      replicator: this.replicator,
      log: this.log,
      ...(dataDir === undefined ? {} : { dataDir })
    })
  }

  /** Resolves once the rebalancing pass started by {@link start} has finished. */
  get rebalanced (): Promise<void> {
    return this.rebalancer?.done ?? Promise.resolve()
  }

  /** Routing for native connections: the cluster map, redirects and write quorum. */
  get routing (): NonNullable<NativeConnectionOptions['routing']> {
    return {
      map: this.cluster.map,
      redirectFor: docId => this.cluster.isReplica(docId) ? null : this.liveReplicas(docId)[0]!,
      confirm: docId => this.replicator.confirm(docId)
    }
  }

  /** For a stock client: null if this relay replicates `docId`, else the replicas to pass it through to. */
  proxyTargets (docId: DocId): ClusterMember[] | null {
    return this.cluster.isReplica(docId) ? null : this.liveReplicas(docId)
  }

  /** Serves an inbound relay link. */
  acceptPeer (link: Link): void {
    this.links.accept(link)
  }

  async close (): Promise<void> {
    this.rebalancer?.stop()
    await this.links.close()
  }

  /** The replicas of `docId`, those with a live link first (in preference order within each group). */
  private liveReplicas (docId: DocId): ClusterMember[] {
    const replicas = this.cluster.replicasOf(docId)
    return [...replicas.filter(m => this.links.isUp(m.id)), ...replicas.filter(m => !this.links.isUp(m.id))]
  }
}
