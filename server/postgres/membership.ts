/**
 * Membership of the relays on one database, without a peer list: each relay registers its
 * id and advertised URL with a lease on the database's clock and renews it on every
 * heartbeat (a few times per lease); the live relays are those whose lease has not
 * expired, read on the same heartbeat. A relay that stops renewing (killed, paused, cut
 * off from the database) is gone for the others once its lease expires: each relay
 * re-reads the members at the moment the next lease among them runs out, so it notices
 * within a few milliseconds. Joining is registering; a clean stop deletes the row.
 *
 * A relay trusts its own lease only as long as it can prove it: until the time it sent its
 * last successful renewal plus the lease, on its own monotonic clock (which only errs
 * early). Past that, or when a renewal finds the lease already expired in the database
 * (the relay was paused), it has lapsed: it tells its owner, which drops its documents,
 * and registers again under a new incarnation.
 *
 * The heartbeat carries the relay's load too (see placement/load-report.ts): each renewal
 * writes the report `publish` gives, and each read returns every live relay's last report,
 * validated (a bad one reads as null).
 */
import { randomUUID } from 'node:crypto'
import type { Logger } from '../../shared/listen/logger.js'
import type { ClusterMember } from '../../shared/placement.js'
import type { Database } from './database.js'
import { parseLoadReport, type LoadReport } from '../placement/load-report.js'

/** A live relay as the last heartbeat read it. */
export interface LiveMember extends ClusterMember {
  /** Milliseconds between its last renewal and the read (on the database's clock). */
  renewedAgoMs: number
  /** Milliseconds its lease had left at the read. */
  remainingMs: number
  /** Its last load report; null if it published none (or one that is not valid). */
  load: LoadReport | null
}

/** Options of {@link Membership}. */
export interface MembershipOptions {
  db: Database
  logger: Logger
  /** This relay's id. */
  selfId: string
  /** The URL other relays and clients reach this relay at. */
  url: string
  /** Lease length in milliseconds. */
  leaseMs: number
  /** The load report each renewal publishes; none without it. */
  publish?: () => LoadReport
}

/** What a relay's membership reports. */
export interface MembershipEvents {
  /** The set of live relays changed (or their URLs). */
  changed(members: readonly LiveMember[]): void
  /** This relay's lease lapsed: it must stop serving what it owned. */
  lapsed(reason: string): void
  /** A heartbeat read the members (changed or not). */
  read(): void
}

/** Heartbeats per lease: a live relay's last renewal is at most a third of a lease old. */
const HEARTBEATS_PER_LEASE = 3

/** See the module comment. */
export class Membership {
  private incarnation = randomUUID()
  private view: LiveMember[] = []
  /** When the view was read (performance.now()). */
  private readAt = 0
  /** Until when this relay's lease is proven (performance.now()); 0: not live. */
  private provenUntil = 0
  private heartbeatTimer: ReturnType<typeof setTimeout> | null = null
  private lapseTimer: ReturnType<typeof setTimeout> | null = null
  private beating: Promise<void> | null = null
  private stopped = false
  readonly heartbeatMs: number

  constructor (private readonly options: MembershipOptions, private readonly events: MembershipEvents) {
    this.heartbeatMs = Math.max(20, Math.floor(options.leaseMs / HEARTBEATS_PER_LEASE))
  }

  get selfId (): string {
    return this.options.selfId
  }

  /** This relay's current registration (a new one after each lapse). */
  get self (): { id: string, incarnation: string } {
    return { id: this.options.selfId, incarnation: this.incarnation }
  }

  /** Whether this relay's lease is proven now. */
  get live (): boolean {
    return performance.now() < this.provenUntil
  }

  /** The live relays (this one included while its lease holds), sorted by id. */
  get members (): readonly LiveMember[] {
    return this.view
  }

  /**
   * Whether relay `id` looks dead: it has missed renewals (its last one is older than two
   * heartbeats and a margin), though its lease has not run out yet.
   */
  suspect (id: string): boolean {
    const member = this.view.find(m => m.id === id)
    if (member === undefined) return true
    return member.renewedAgoMs + (performance.now() - this.readAt) > 2 * this.heartbeatMs + 250
  }

  /** Registers this relay and reads the members; rejects if the database cannot be reached. */
  async join (): Promise<void> {
    await this.register()
    await this.read()
    this.schedule()
  }

  /** Stops renewing and deletes this relay's registration (others see it gone at once). */
  async leave (): Promise<void> {
    this.stopped = true
    this.clearTimers()
    await this.beating
    this.provenUntil = 0
    await this.options.db.query('DELETE FROM petaldb_relays WHERE id = $1 AND incarnation = $2', [this.options.selfId, this.incarnation]).catch(() => {})
  }

  /** Stops renewing, leaving the registration to expire (for a relay that cannot reach the database any more). */
  stop (): void {
    this.stopped = true
    this.clearTimers()
  }

  private async register (): Promise<void> {
    const sentAt = performance.now()
    this.incarnation = randomUUID()
    await this.options.db.query(`
      INSERT INTO petaldb_relays (id, url, incarnation, renewed_at, lease_until)
      VALUES ($1, $2, $3, now(), now() + $4 * interval '1 millisecond')
      ON CONFLICT (id) DO UPDATE SET url = excluded.url, incarnation = excluded.incarnation, renewed_at = excluded.renewed_at, lease_until = excluded.lease_until`,
    [this.options.selfId, this.options.url, this.incarnation, this.options.leaseMs])
    // A new incarnation serves nothing yet: claims left by an earlier one (a crash, or a
    // lease lost while the database was away) would otherwise keep every other relay out
    // of those documents for as long as this relay stays alive.
    await this.options.db.query('UPDATE petaldb_owners SET relay = NULL WHERE relay = $1', [this.options.selfId])
    this.proven(sentAt)
    this.options.logger.info({ relay: this.options.selfId, url: this.options.url, leaseMs: this.options.leaseMs }, 'registered with the database')
  }

  /** Renews this relay's lease; false if it had already expired (or another process took the id). */
  private async renew (): Promise<boolean> {
    const sentAt = performance.now()
    let load: LoadReport | null = null
    try {
      load = this.options.publish?.() ?? null
    } catch (error) {
      // A lease is never lost to a load figure.
      this.options.logger.debug({ err: error }, 'could not measure the load')
    }
    const rows = await this.options.db.query(`
      UPDATE petaldb_relays SET renewed_at = now(), lease_until = now() + $3 * interval '1 millisecond',
        load_seq = $4, updates_per_second = $5, bytes_per_second = $6, event_loop_utilization = $7, connections = $8, document_bytes = $9, hot_documents = $10::jsonb
      WHERE id = $1 AND incarnation = $2 AND lease_until > now() RETURNING 1`,
    [this.options.selfId, this.incarnation, this.options.leaseMs, load?.seq ?? null, load?.updatesPerSecond ?? null, load?.bytesPerSecond ?? null,
      load?.elu ?? null, load === null ? null : Math.round(load.connections), load === null ? null : Math.round(load.documentBytes),
      load === null ? null : JSON.stringify({ hot: load.hot, big: load.big })])
    if (rows.length === 0) return false
    this.proven(sentAt)
    return true
  }

  /** Whether another process holds a live registration under this relay's id. */
  private async takenOver (): Promise<boolean> {
    const rows = await this.options.db.query('SELECT 1 FROM petaldb_relays WHERE id = $1 AND incarnation <> $2 AND lease_until > now()', [this.options.selfId, this.incarnation])
    return rows.length > 0
  }

  private async read (): Promise<void> {
    const rows = await this.options.db.query<LoadRow & { id: string, url: string, ago: number, remaining: number }>(`
      SELECT id, url, extract(epoch FROM now() - renewed_at) * 1000 AS ago, extract(epoch FROM lease_until - now()) * 1000 AS remaining,
        load_seq, updates_per_second, bytes_per_second, event_loop_utilization, connections, document_bytes, hot_documents
      FROM petaldb_relays WHERE lease_until > now() ORDER BY id`)
    this.readAt = performance.now()
    const view = rows.map(row => ({ id: row.id, url: row.url, renewedAgoMs: Number(row.ago), remainingMs: Number(row.remaining), load: loadOf(row) }))
    // This relay counts itself live exactly as long as it can prove its lease.
    const members = view.filter(member => member.id !== this.options.selfId || this.live)
    const changed = members.length !== this.view.length || members.some((member, i) => member.id !== this.view[i]!.id || member.url !== this.view[i]!.url)
    this.view = members
    if (changed) this.events.changed(members)
  }

  private async heartbeat (): Promise<void> {
    try {
      if (!await this.renew()) {
        if (await this.takenOver()) {
          this.options.logger.error({ relay: this.options.selfId }, `another relay registered with the same id ${JSON.stringify(this.options.selfId)}: give every relay its own --id`)
        }
        if (this.provenUntil > 0) this.lapse('its lease had expired in the database when it renewed it (was the relay paused?)')
        await this.register()
      }
      await this.read()
      this.events.read()
    } catch (error) {
      // The database is unreachable (Database logs it): the lease holds until provenUntil.
      this.options.logger.debug({ err: error }, 'heartbeat failed')
    }
  }

  private schedule (): void {
    if (this.stopped) return
    // The next heartbeat, or sooner the moment another relay's lease runs out.
    let delay = this.heartbeatMs
    for (const member of this.view) {
      if (member.id === this.options.selfId) continue
      const expiresIn = member.remainingMs - (performance.now() - this.readAt) + 5
      if (expiresIn < delay) delay = Math.max(0, expiresIn)
    }
    this.heartbeatTimer = setTimeout(() => {
      this.heartbeatTimer = null
      this.beating = this.heartbeat().finally(() => {
        this.beating = null
        this.schedule()
      })
    }, delay)
  }

  private proven (sentAt: number): void {
    this.provenUntil = sentAt + this.options.leaseMs
    if (this.lapseTimer !== null) clearTimeout(this.lapseTimer)
    this.lapseTimer = setTimeout(() => {
      this.lapseTimer = null
      this.lapse(`it could not renew its lease for ${this.options.leaseMs} ms`)
    }, Math.max(0, this.provenUntil - performance.now()))
  }

  private lapse (reason: string): void {
    this.provenUntil = 0
    if (this.lapseTimer !== null) clearTimeout(this.lapseTimer)
    this.lapseTimer = null
    this.options.logger.error({ relay: this.options.selfId }, `this relay lost its lease: ${reason}; dropping its documents`)
    const members = this.view.filter(member => member.id !== this.options.selfId)
    if (members.length !== this.view.length) {
      this.view = members
      this.events.changed(members)
    }
    this.events.lapsed(reason)
  }

  private clearTimers (): void {
    if (this.heartbeatTimer !== null) clearTimeout(this.heartbeatTimer)
    if (this.lapseTimer !== null) clearTimeout(this.lapseTimer)
    this.heartbeatTimer = null
    this.lapseTimer = null
  }
}

/** The load columns of a `petaldb_relays` row, as `pg` returns them (bigint as text, jsonb parsed). */
interface LoadRow {
  load_seq: string | null
  updates_per_second: number | null
  bytes_per_second: number | null
  event_loop_utilization: number | null
  connections: number | null
  document_bytes: string | null
  hot_documents: { hot?: unknown, big?: unknown } | null
}

/** The report in `row`, validated; null if there is none or it is not valid. */
function loadOf (row: LoadRow): LoadReport | null {
  if (row.load_seq === null) return null
  const lists = typeof row.hot_documents === 'object' && row.hot_documents !== null ? row.hot_documents : {}
  return parseLoadReport({
    seq: row.load_seq,
    updatesPerSecond: row.updates_per_second,
    bytesPerSecond: row.bytes_per_second,
    elu: row.event_loop_utilization,
    connections: row.connections,
    documentBytes: row.document_bytes,
    hot: lists.hot,
    big: lists.big
  })
}
