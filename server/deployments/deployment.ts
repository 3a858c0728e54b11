/**
 * One contract for every way relays are deployed: a relay on its own (`standalone.ts`), a
 * cluster of relays on SQLite (`sqlite-cluster.ts`), relays sharing one PostgreSQL database
 * (`postgres.ts`). The relay composes a listener, a document registry and a deployment and
 * never names a backend, as Hocuspocus's server knows extensions and automerge-repo's Repo
 * knows adapters. A deployment owns its storage (and the data directory's lock, or the
 * database), what the registry asks of it (claims, a gate before loads) and tells it (loads,
 * evictions, deletions), where native clients, stock clients and HTTP requests for a document
 * go, the links between relays, its health, and its start and close.
 */
import type { DocId } from '../../shared/wire/doc-id.js'
import type { ClusterMember } from '../../shared/placement.js'
import type { DocStore } from '../../shared/storage/store.js'
import type { RelayPeers } from '../../shared/listen/native-accept.js'
import type { NativeRouting } from '../connections/native-connection.js'
import type { DocumentRegistry, RegistryOptions } from '../documents/registry.js'
import type { DocsApiContext } from '../http/docs-api.js'
import type { LoadHealth } from '../placement/load-report.js'

export type { LoadHealth } from '../placement/load-report.js'

/** What the registry asks of a deployment and tells it; a standalone relay's are empty. */
export type DocumentHooks = Pick<RegistryOptions, 'claim' | 'gate' | 'onLoad' | 'onEvict' | 'onDelete'> & {
  /** An update of `bytes` was received for `docId` (on the hot path: count, nothing more). */
  received?: (docId: DocId, bytes: number) => void
}

/** What the relay tells its deployment about itself, for the load it publishes. */
export interface RelayCounts {
  /** Open client connections. */
  connections(): number
}

/** How a deployment stands, for `/healthz` and `/metrics`. */
export interface DeploymentHealth {
  /** Why the relay cannot serve documents now (`/healthz` answers 503), or null. */
  unavailable: string | null
  /** Links up to other relays, and how many of them the other relay dialed (they arrive as native connections). */
  relayLinks: { up: number, inbound: number }
  /** Relays among which documents are placed, and how many this one is linked to (itself included); null on its own. */
  members: { total: number, linked: number } | null
  /** This relay's load, where documents are placed by load (relays on PostgreSQL); absent elsewhere. */
  load?: LoadHealth
}

/** See the module comment. Made by `openDeployment` (`open.ts`). */
export interface Deployment {
  /** Where documents are stored. */
  readonly store: DocStore
  /** What the registry asks and tells (see {@link DocumentHooks}). */
  readonly documents: DocumentHooks
  /** Joins the registry made with {@link documents}, and learns what the relay counts; before {@link start}. */
  attach(registry: DocumentRegistry, counts?: RelayCounts): void
  /** This relay's id among relays and to native clients, once it listens at `url`. */
  relayId(url: string): string
  /** Starts taking part: links to other relays, membership, moves. Resolves once the relay may serve. */
  start(url: string): Promise<void>
  /** The cluster map native clients get, and their redirects; null for a relay on its own. */
  readonly routing: NativeRouting | null
  /** How links from other relays are admitted and served; null if no relay links here. */
  readonly relayPeers: RelayPeers | null
  /** For a stock client: null if this relay serves `docId`, else the relays to pass it through to, in order. */
  proxyTargets(docId: DocId): ClusterMember[] | null
  /** Where the HTTP document API finds documents among relays; null for a relay on its own. */
  docsRouting(self: ClusterMember): DocsApiContext['cluster']
  health(): DeploymentHealth
  /** What the relay is, in words, for its first line on the console (`as r1 of a 3-relay cluster (data in ./d)`). */
  describe(): string
  /** Stops taking part (links to other relays, moves): before the relay's connections close. */
  stop(): Promise<void>
  /** Releases the storage: after the registry has closed every document and committed the last write. */
  close(): Promise<void>
}
