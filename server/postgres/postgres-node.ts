/**
 * A relay among many on one PostgreSQL database: the database keeps every document durable
 * (and replicated, if it is); relays keep documents in memory, route them and fail over.
 * Composed of the lease-based membership (membership.ts) and the fenced claims
 * (ownership.ts); placement is the rendezvous hashing the SQLite cluster uses, over the
 * live relays, with one home per document.
 *
 * - Routing: a relay serves the documents it is the home of, and redirects native clients
 *   (or passes stock clients through) to the home of the others. The map it sends native
 *   clients names each document's first two relays in preference order: its home, and the
 *   relay that takes it over if the home dies, where a client goes as soon as it loses the
 *   home. That relay serves the document at once if the home has missed renewals (its claim
 *   waits for the home's lease to run out), and redirects otherwise.
 * - Serving starts with a claim, which waits while the previous home still holds the
 *   document (it releases it when it sees the new placement, or its lease runs out).
 * - On every heartbeat the relay drops the documents it is no longer the home of, or whose
 *   claim another relay took (native clients are redirected, stock clients reconnect), and
 *   sends native clients the new map when the members changed. When its own lease lapses it
 *   drops everything and registers again.
 */
import type { Logger } from 'pino'
import type { DocId } from '../../shared/wire/doc-id.js'
import { preferenceList, type ClusterMap, type ClusterMember } from '../../shared/placement.js'
import { DocLoadError, FencedError, MovedError } from '../../shared/errors.js'
import type { NativeRouting } from '../connections/native-connection.js'
import type { DocumentRegistry } from '../documents/registry.js'
import type { RelayDocument } from '../documents/relay-document.js'
import type { Database } from './database.js'
import { Membership, type LiveMember } from './membership.js'
import { Ownership } from './ownership.js'

/** Default lease of a relay on the database, in milliseconds. */
export const DEFAULT_LEASE_MS = 3000

/** Settings of a relay on a shared PostgreSQL database. */
export interface PostgresOptions {
  /** The database, `postgres://user:password@host:port/database`. */
  url: string
  /** Lease length in milliseconds: a relay that stops renewing is gone for the others this long after its last renewal. Default 3000. */
  leaseMs?: number
  /** The URL other relays and clients reach this relay at. Default its listening URL. */
  advertiseUrl?: string
}

/** Where a document is served, as this relay sees it now. */
type Route = { serve: true } | { serve: false, home: ClusterMember }

/** See the module comment. */
export class PostgresNode {
  readonly membership: Membership
  readonly ownership: Ownership
  private readonly mapListeners = new Set<(map: ClusterMap) => void>()
  private readonly waiters = new Set<() => void>()
  private checking = false
  private closed = false
  private readonly leaseMs: number

  constructor (
    private readonly db: Database,
    options: { selfId: string, url: string, leaseMs: number },
    private readonly registry: DocumentRegistry,
    private readonly logger: Logger
  ) {
    this.leaseMs = options.leaseMs
    this.membership = new Membership({ db, logger, ...options }, {
      changed: members => this.membersChanged(members),
      lapsed: reason => this.lapsed(reason),
      read: () => { void this.recheck() }
    })
    this.ownership = new Ownership(db, () => this.membership.self)
  }

  /** Registers with the database; resolves once this relay is a live member. */
  async start (): Promise<void> {
    await this.membership.join()
  }

  /** The claim epoch of `docId`, for the store's fencing. */
  epochOf (docId: DocId): string | null {
    return this.ownership.epochOf(docId)
  }

  get unavailable (): string | null {
    if (this.db.isReachable === false) return `PostgreSQL is unreachable: ${this.db.failure ?? 'unknown error'}`
    if (!this.membership.live) return 'this relay holds no lease on the database'
    return null
  }

  get routing (): NativeRouting {
    const node = this
    return {
      get map () { return node.map },
      redirectFor: docId => {
        const route = this.route(docId)
        return route.serve ? null : route.home
      },
      onMapChange: listener => {
        this.mapListeners.add(listener)
        return () => this.mapListeners.delete(listener)
      }
    }
  }

  proxyTargets (docId: DocId): ClusterMember[] | null {
    const route = this.route(docId)
    return route.serve ? null : [route.home]
  }

  /**
   * Registry hook before a load: claims `docId`, waiting while another relay still holds
   * it. Rejects with a MovedError once another relay is its home, or a DocLoadError (try
   * again) if this relay has no lease or the document stays held past a lease.
   */
  async claim (docId: DocId): Promise<void> {
    const deadline = performance.now() + this.leaseMs + 2 * this.membership.heartbeatMs + 1000
    for (let attempt = 0; ; attempt++) {
      if (this.closed) throw new DocLoadError(`${docId}: the relay is shutting down`)
      const route = this.route(docId)
      if (!route.serve) throw new MovedError(route.home, `${docId} is served by relay ${route.home.id}`)
      if (!this.membership.live) throw new DocLoadError(`${docId} cannot be served: this relay holds no lease on the database`)
      const result = await this.ownership.claim(docId)
      if (result.claimed) return
      if (performance.now() > deadline) throw new DocLoadError(`${docId} is still held by relay ${result.owner ?? '(unknown)'}`)
      await this.changeOr(Math.min(200, 10 * 2 ** attempt))
    }
  }

  onEvict (doc: RelayDocument): void {
    const epoch = this.ownership.epochOf(doc.docId)
    if (epoch === null) return
    // Released once what it wrote has committed, so the next relay loads all of it.
    doc.settled().catch(() => {}).then(() => this.ownership.release(doc.docId, epoch)).catch((error: unknown) => {
      this.logger.debug({ err: error, doc: doc.docId }, 'could not release a document (its claim lapses with this relay\'s lease)')
    })
  }

  /** Stops serving: releases every claim and leaves the membership, so others take over at once. */
  async close (): Promise<void> {
    this.closed = true
    this.wake()
    this.membership.stop()
    await this.ownership.releaseAll().catch(() => {})
    await this.membership.leave()
  }

  private get map (): ClusterMap {
    const members = this.membership.members.map(({ id, url }) => ({ id, url }))
    return { copies: Math.min(2, members.length), members }
  }

  private route (docId: DocId): Route {
    const members = this.membership.members
    if (members.length === 0) return { serve: true }
    const [home, next] = preferenceList(docId, members)
    if (home!.id === this.membership.selfId) return { serve: true }
    if (next?.id === this.membership.selfId && this.membership.suspect(home!.id)) return { serve: true }
    return { serve: false, home: { id: home!.id, url: home!.url } }
  }

  private membersChanged (members: readonly LiveMember[]): void {
    this.logger.info({ relays: members.map(member => member.id) }, 'live relays changed')
    const map = this.map
    for (const listener of this.mapListeners) listener(map)
    this.wake()
  }

  /** After every heartbeat: documents this relay should not serve any more are dropped. */
  private async recheck (): Promise<void> {
    if (this.checking || this.closed) return
    this.checking = true
    try {
      for (const docId of this.registry.docIds) {
        const route = this.route(docId)
        if (!route.serve) this.registry.drop(docId, new MovedError(route.home, `${docId} moved to relay ${route.home.id}`))
      }
      for (const { docId, owner } of await this.ownership.lost(this.registry.docIds)) {
        const home = this.membership.members.find(member => member.id === owner)
        this.logger.warn({ doc: docId, owner }, 'another relay claimed this document; dropping it')
        this.registry.drop(docId, home === undefined || home.id === this.membership.selfId
          ? new FencedError(`another relay serves ${docId} now; try again`)
          : new MovedError({ id: home.id, url: home.url }, `${docId} moved to relay ${home.id}`))
      }
    } catch (error) {
      this.logger.debug({ err: error }, 'could not check claims')
    } finally {
      this.checking = false
    }
  }

  private lapsed (reason: string): void {
    this.ownership.forgetAll()
    for (const docId of this.registry.docIds) this.registry.drop(docId, new FencedError(`this relay lost its lease on the database (${reason}); try again`))
  }

  /** Resolves after `ms`, or sooner when the members change. */
  private changeOr (ms: number): Promise<void> {
    return new Promise(resolve => {
      const done = (): void => {
        clearTimeout(timer)
        this.waiters.delete(done)
        resolve()
      }
      const timer = setTimeout(done, ms)
      this.waiters.add(done)
    })
  }

  private wake (): void {
    for (const waiter of [...this.waiters]) waiter()
  }
}
