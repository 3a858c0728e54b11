/**
 * A relay's membership in a cluster, composed of the placement rules (Cluster), the links
 * to the other relays (RelayLinks), replication and write quorum (Replicator), the moves
 * after a membership change (Rebalancer), and tombstones: exchanged over the links
 * (TombstoneExchange), and heard before a document is served (TombstoneGate). The relay
 * asks it where documents live.
 */
import type { Logger } from 'pino'
import type { DocId } from '../../shared/wire/doc-id.js'
import type { ClusterMember } from '../../shared/placement.js'
import type { DocStore } from '../../shared/storage/store.js'
import { Cluster, type ClusterOptions } from './cluster.js'
import type { NativeRouting } from '../connections/native-connection.js'
import type { RelayPeers } from '../../shared/listen/native-accept.js'
import { RelayLinks } from './relay-links.js'
import { Rebalancer } from './rebalancer.js'
import type { DocumentRegistry } from '../documents/registry.js'
import type { RelayDocument } from '../documents/relay-document.js'
import { Replicator } from './replicator.js'
import { TombstoneExchange } from './tombstone-exchange.js'
import { TombstoneGate } from './tombstone-gate.js'

/** See the module comment. */
export class ClusterNode {
  readonly cluster: Cluster
  private readonly replicator: Replicator
  private readonly links: RelayLinks
  private rebalancer: Rebalancer | null = null

  /** Whether a document may be served: once its other homes' tombstones were heard. */
  readonly gate: TombstoneGate
  private readonly tombstones: TombstoneExchange

  constructor (options: ClusterOptions, private readonly registry: DocumentRegistry, private readonly store: DocStore, private readonly logger: Logger) {
    this.cluster = new Cluster(options)
    this.replicator = new Replicator(this.cluster, registry, logger)
    this.gate = new TombstoneGate(this.cluster)
    this.tombstones = new TombstoneExchange({ cluster: this.cluster, registry, store: this.store, logger, heard: peerId => this.gate.exchanged(peerId) })
    this.links = new RelayLinks(this.cluster, registry, {
      up: (peerId, connection) => {
        this.gate.linkUp(peerId)
        this.tombstones.linkUp(peerId, connection)
        this.replicator.linkUp(peerId, connection)
      },
      down: (peerId, connection) => {
        this.gate.linkDown(peerId)
        this.tombstones.linkDown(peerId, connection)
        this.replicator.linkDown(peerId, connection)
      },
      tombstones: (peerId, connection, message) => this.tombstones.receive(peerId, connection, message)
    }, logger)
  }

  /** Registry hook: a document was deleted here; the other relays learn it at once. */
  onDelete (docId: DocId, deletedAt: number): void {
    this.tombstones.deleted(docId, deletedAt)
  }

  /** Registry hook: a document loaded. */
  onLoad (doc: RelayDocument): void {
    this.replicator.attach(doc)
  }

  /** Registry hook: a document is being evicted. */
  onEvict (doc: RelayDocument): void {
    this.replicator.detach(doc)
  }

  /** Starts dialing the other relays and, if the member list changed, moving documents. */
  start (dataDir: string | undefined): void {
    this.links.start()
    this.rebalancer = new Rebalancer({
      cluster: this.cluster,
      store: this.store,
      registry: this.registry,
      replicator: this.replicator,
      logger: this.logger,
      ...(dataDir === undefined ? {} : { dataDir })
    })
  }

  /** Routing for native clients: the cluster map and redirects. */
  get routing (): NativeRouting {
    return {
      map: this.cluster.map,
      redirectFor: docId => this.cluster.isHome(docId) ? null : this.liveHomes(docId)[0]!
    }
  }

  /** Links up to other relays, and how many of them were dialed by the other side. */
  get linkCounts (): { up: number, inbound: number } {
    return this.links.counts
  }

  /** How inbound links from other relays are admitted. */
  get relayPeers (): RelayPeers {
    return this.links.accepting
  }

  /** For a stock client: null if this relay is a home of `docId`, else the homes to pass it through to. */
  proxyTargets (docId: DocId): ClusterMember[] | null {
    return this.cluster.isHome(docId) ? null : this.liveHomes(docId)
  }

  async close (): Promise<void> {
    this.gate.close()
    this.rebalancer?.stop()
    await this.links.close()
  }

  /** The homes of `docId`, those with a live link first (in preference order within each group). */
  private liveHomes (docId: DocId): ClusterMember[] {
    const homes = this.cluster.homesOf(docId)
    return [...homes.filter(m => this.links.isUp(m.id)), ...homes.filter(m => !this.links.isUp(m.id))]
  }
}
