/**
 * What a relay asks of the part that decides which relay serves each document: a cluster
 * of relays on SQLite with a static member list (cluster/), or relays that share one
 * PostgreSQL database (postgres/). Both route with rendezvous placement and the same
 * redirects and pass-through; a relay on its own has no node.
 */
import type { DocId } from '../shared/wire/doc-id.js'
import type { ClusterMember } from '../shared/placement.js'
import type { NativeRouting, RelayLinks } from './connections/native-connection.js'
import type { RelayDocument } from './documents/relay-document.js'

/** See the module comment. */
export interface RelayNode {
  /** The map sent to native clients, and their redirects. */
  readonly routing: NativeRouting
  /** How inbound links from other relays are admitted (relays that replicate to each other only). */
  readonly relayLinks?: RelayLinks
  /** Links up to other relays, and how many of them the other side dialed. */
  readonly linkCounts: { up: number, inbound: number }
  /** Why the relay cannot serve documents now (`/healthz` answers 503), or null. */
  readonly unavailable: string | null
  /** For a stock client: null if this relay serves `docId`, else the relays to pass it through to, in order. */
  proxyTargets(docId: DocId): ClusterMember[] | null
  /** Registry hook: a document loaded. */
  onLoad(doc: RelayDocument): void
  /** Registry hook: a document is being evicted. */
  onEvict(doc: RelayDocument): void
}
