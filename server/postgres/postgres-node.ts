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
 * - Load placement (see load-placement.ts): each relay publishes its load on its heartbeat;
 *   one carrying well above the mean hands some of its documents to the least loaded relay.
 *   A placement row overrides rendezvous hashing while its relay is live (if it dies, the
 *   document goes to the first relay of its rendezvous order other than the placed one).
 *   The hand-over: the row is written, then the document is dropped here with a MovedError
 *   naming the target (native clients are redirected, stock clients reconnect); its claim
 *   is released once what it wrote has committed, and the target's claim waits for that.
 *   A relay asked for a document that its view places elsewhere re-reads that document's
 *   row once before redirecting, so a client sent to the new home is not sent back.
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
import { LoadPlacement } from './load-placement.js'
import type { LoadHealth } from '../placement/load-report.js'
import { Placements } from './placements.js'
import { placementSettings, type PlacementOptions } from '../placement/options.js'
import type { Move } from '../placement/plan.js'

/** Default lease of a relay on the database, in milliseconds. */
export const DEFAULT_LEASE_MS = 3000

/** A document placed on this relay that it has not loaded for this long returns to its rendezvous home. */
const UNSERVED_PLACEMENT_MS = 60_000

/** Settings of a relay on a shared PostgreSQL database. */
export interface PostgresOptions {
  /** The database, `postgres://user:password@host:port/database`. */
  url: string
  /** Lease length in milliseconds: a relay that stops renewing is gone for the others this long after its last renewal. Default 3000. */
  leaseMs?: number
  /** The URL other relays and clients reach this relay at. Default its listening URL. */
  advertiseUrl?: string
  /**
   * Load placement: documents move from a relay well above the mean load to the least
   * loaded one (see placement/options.ts for the settings and defaults); `false`: this relay
   * moves nothing (it still publishes its load, and follows the others' placements). Default on.
   */
  placement?: PlacementOptions | false
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
  readonly load: LoadPlacement

  constructor (
    private readonly db: Database,
    options: { selfId: string, url: string, leaseMs: number, placement?: PlacementOptions | false, connections?: () => number },
    private readonly registry: DocumentRegistry,
    private readonly logger: Logger
  ) {
    this.leaseMs = options.leaseMs
    const settings = placementSettings(options.placement === false ? {} : options.placement)
    this.load = new LoadPlacement(settings, options.placement !== false, registry, options.selfId, options.connections ?? (() => 0), new Placements(db, options.selfId))
    this.membership = new Membership({ db, logger, selfId: options.selfId, url: options.url, leaseMs: options.leaseMs, publish: () => this.load.report() }, {
      changed: members => this.membersChanged(members),
      lapsed: reason => this.lapsed(reason),
      read: () => { void this.recheck() }
    })
    this.ownership = new Ownership(db, () => this.membership.self)
  }

  /** Registers with the database; resolves once this relay is a live member. */
  async start (): Promise<void> {
    // A new run of this relay serves none of what was placed on an earlier one.
    await this.load.placements.clearHere()
    await this.membership.join()
    // Read again on every heartbeat: a failure here only delays what this relay knows of placements.
    await this.load.placements.refresh(this.membership.heartbeatMs).catch((error: unknown) => this.logger.debug({ err: error }, 'could not read the placements'))
  }

  /** An update of `bytes` was received for `docId` (the hot path). */
  received (docId: DocId, bytes: number): void {
    this.load.meter.count(docId, bytes)
  }

  /** This relay's load, for `/healthz` and `/metrics`. */
  get loadFigures (): LoadHealth {
    return this.load.figures
  }

  /** A document loaded here. */
  onLoad (doc: RelayDocument): void {
    this.load.loaded(doc.docId)
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
        if (route.serve) return null
        // Not yet checked against the database: the claim re-reads the placement, then redirects if it must.
        if (!this.load.placements.rereadWithin(docId, this.membership.heartbeatMs)) return null
        return route.home
      },
      onMapChange: listener => {
        this.mapListeners.add(listener)
        return () => this.mapListeners.delete(listener)
      }
    }
  }

  proxyTargets (docId: DocId): ClusterMember[] | null {
    const route = this.route(docId)
    if (route.serve) return null
    // A stock client is passed on at once; the placement is re-read meanwhile, so that a pass back here (a view older than a move) ends here.
    if (!this.load.placements.rereadWithin(docId, this.membership.heartbeatMs)) this.reread(docId).catch(() => {})
    return [route.home]
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
      let route = this.route(docId)
      if (!route.serve && attempt === 0 && !this.load.placements.rereadWithin(docId, this.membership.heartbeatMs)) {
        await this.reread(docId)
        route = this.route(docId)
      }
      if (!route.serve) throw new MovedError(route.home, `${docId} is served by relay ${route.home.id}`)
      if (!this.membership.live) throw new DocLoadError(`${docId} cannot be served: this relay holds no lease on the database`)
      const result = await this.ownership.claim(docId)
      if (result.claimed) return
      if (performance.now() > deadline) throw new DocLoadError(`${docId} is still held by relay ${result.owner ?? '(unknown)'}`)
      await this.changeOr(Math.min(200, 10 * 2 ** attempt))
    }
  }

  onEvict (doc: RelayDocument): void {
    const { docId } = doc
    this.load.left(docId)
    const epoch = this.ownership.epochOf(docId)
    // Evicted for good (not reloaded): a placement here ends, and its rendezvous home serves it again.
    const unplace = !this.registry.has(docId) && this.load.placements.relayOf(docId) === this.membership.selfId
    if (epoch === null && !unplace) return
    // Released once what it wrote has committed, so the next relay loads all of it.
    doc.settled().catch(() => {}).then(async () => {
      if (epoch !== null) await this.ownership.release(docId, epoch)
      if (unplace && !this.registry.has(docId)) await this.load.placements.removeHere(docId)
    }).catch((error: unknown) => {
      this.logger.debug({ err: error, doc: docId }, 'could not release a document (its claim lapses with this relay\'s lease)')
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
    const order = preferenceList(docId, members)
    let [home, next] = order
    const placedOn = this.load.placements.relayOf(docId)
    const placed = placedOn === null ? undefined : members.find(member => member.id === placedOn)
    if (placed !== undefined) {
      home = placed
      next = order.find(member => member.id !== placed.id)
    }
    if (home!.id === this.membership.selfId) return { serve: true }
    if (next?.id === this.membership.selfId && this.membership.suspect(home!.id)) return { serve: true }
    return { serve: false, home: { id: home!.id, url: home!.url } }
  }

  /** Re-reads the placement of `docId` alone. */
  private async reread (docId: DocId): Promise<void> {
    try {
      await this.load.placements.rereadOne(docId)
    } catch (error) {
      this.logger.debug({ err: error, doc: docId }, 'could not re-read a placement')
    }
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
      await this.load.placements.refresh(this.membership.heartbeatMs)
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
      await this.unplaceUnserved()
      for (const move of this.load.plan(this.membership.members)) await this.move(move)
    } catch (error) {
      this.logger.debug({ err: error }, 'could not check claims')
    } finally {
      this.checking = false
    }
  }

  /**
   * Hands `move.doc` to `move.to`: the placement row first (from then on every relay routes
   * the document there), then the document leaves this relay (see the module comment).
   */
  private async move (move: Move): Promise<void> {
    const target = this.membership.members.find(member => member.id === move.to)
    if (target === undefined || this.closed || this.registry.peek(move.doc as DocId) === null) return
    const docId = move.doc as DocId
    try {
      await this.load.placements.place(docId, target.id, move)
    } catch (error) {
      this.logger.warn({ err: error, doc: docId }, 'could not place a document on another relay; it stays here')
      return
    }
    this.load.movesOut++
    this.logger.info({ doc: docId, to: target.id, reason: move.reason, updatesPerSecond: Math.round(move.updatesPerSecond), bytes: move.bytes }, 'moving a document by load')
    this.registry.drop(docId, new MovedError({ id: target.id, url: target.url }, `${docId} moved to relay ${target.id} (load)`))
  }

  /** Placements on this relay of documents it has not served for a while end (their clients went elsewhere, or away). */
  private async unplaceUnserved (): Promise<void> {
    const now = performance.now()
    for (const docId of this.load.placements.placedHere()) {
      const placement = this.load.placements.get(docId)
      if (placement === null || this.registry.has(docId) || now - placement.placedAt < UNSERVED_PLACEMENT_MS) continue
      await this.load.placements.removeHere(docId)
    }
  }

  private lapsed (reason: string): void {
    this.ownership.forgetAll()
    this.load.placements.clearHere().catch((error: unknown) => this.logger.debug({ err: error }, 'could not clear the placements on this relay'))
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
