/**
 * The documents placed away from their rendezvous home by load (`petaldb_placements`), as
 * this relay last read them: routing consults this view before rendezvous hashing. The view
 * is re-read on every heartbeat (the table stays small: a row goes when its relay evicts the
 * document, stops being live, or has not served it for a while), and one document's row is
 * re-read on demand, so that a relay asked for a document just placed on it does not send
 * the client back. Rows are checked as they are read: a bad one is skipped.
 */
import type { DocId } from '../../shared/wire/doc-id.js'
import type { RecentPlacement } from '../placement/plan.js'
import { figure } from '../placement/load-report.js'
import type { Database } from './database.js'

/** A document placed on a relay by load. */
export interface Placement {
  relay: string
  /** When it was placed (performance.now(), from its age on the database's clock). */
  placedAt: number
  /** The relay that placed it. */
  movedFrom: string | null
  /** Its load when it was placed. */
  updatesPerSecond: number
  bytes: number
}

/** Rows read at most (a bound against a table grown by a fault, not a limit ever reached). */
const MAX_ROWS = 100_000

interface Row {
  doc: string
  relay: string
  age: number | string
  moved_from: string | null
  updates_per_second: number | string
  bytes: number | string
}

const COLUMNS = 'doc, relay, extract(epoch FROM now() - placed_at) * 1000 AS age, moved_from, updates_per_second, bytes'

/** See the module comment. */
export class Placements {
  private view = new Map<DocId, Placement>()
  /** When each document's row was last re-read alone, or written by this relay (performance.now()). */
  private readonly reread = new Map<DocId, number>()

  constructor (private readonly db: Database, private readonly selfId: string) {}

  /** The relay `docId` is placed on by load, or null (rendezvous decides). */
  relayOf (docId: DocId): string | null {
    return this.view.get(docId)?.relay ?? null
  }

  /** The placement of `docId`, if any. */
  get (docId: DocId): Placement | null {
    return this.view.get(docId) ?? null
  }

  /** Whether `docId`'s row was re-read alone within the last `ms`. */
  rereadWithin (docId: DocId, ms: number): boolean {
    const at = this.reread.get(docId)
    return at !== undefined && performance.now() - at < ms
  }

  /** Documents placed on relay `id`. */
  countOn (id: string): number {
    let count = 0
    for (const placement of this.view.values()) if (placement.relay === id) count++
    return count
  }

  /** Documents placed on this relay. */
  placedHere (): DocId[] {
    return [...this.view].filter(([, placement]) => placement.relay === this.selfId).map(([docId]) => docId)
  }

  /** Placements younger than `ms`, for the planner. */
  recent (ms: number): RecentPlacement[] {
    const now = performance.now()
    const recent: RecentPlacement[] = []
    for (const [doc, placement] of this.view) {
      const ageMs = now - placement.placedAt
      if (ageMs < ms) recent.push({ doc, relay: placement.relay, ageMs, updatesPerSecond: placement.updatesPerSecond, bytes: placement.bytes })
    }
    return recent
  }

  /**
   * Re-reads every placement, first deleting those on relays that are no longer live (any
   * relay may: the row says nothing true any more); `forgetOlderMs` bounds the re-read memo.
   */
  async refresh (forgetOlderMs: number): Promise<void> {
    const started = performance.now()
    const rows = await this.db.query<Row>(`
      WITH gone AS (
        DELETE FROM petaldb_placements p
        WHERE NOT EXISTS (SELECT 1 FROM petaldb_relays r WHERE r.id = p.relay AND r.lease_until > now())
        RETURNING doc
      )
      SELECT ${COLUMNS} FROM petaldb_placements WHERE doc NOT IN (SELECT doc FROM gone) LIMIT ${MAX_ROWS}`)
    const now = performance.now()
    const view = new Map<DocId, Placement>()
    for (const row of rows) {
      const placement = placementOf(row, now)
      if (placement !== null) view.set(row.doc as DocId, placement)
    }
    // A row re-read or written since this read started is newer than what it found.
    for (const [docId, at] of this.reread) {
      if (at < started) continue
      const current = this.view.get(docId)
      if (current === undefined) view.delete(docId)
      else view.set(docId, current)
    }
    this.view = view
    for (const [docId, at] of this.reread) if (now - at >= forgetOlderMs) this.reread.delete(docId)
  }

  /** Re-reads the row of `docId` alone. */
  async rereadOne (docId: DocId): Promise<void> {
    const rows = await this.db.query<Row>(`SELECT ${COLUMNS} FROM petaldb_placements WHERE doc = $1`, [docId])
    const now = performance.now()
    this.reread.set(docId, now)
    const placement = rows[0] === undefined ? null : placementOf(rows[0], now)
    if (placement === null) this.view.delete(docId)
    else this.view.set(docId, placement)
  }

  /** Places `docId` on relay `relay` (replacing any placement), as this relay decided. */
  async place (docId: DocId, relay: string, load: { updatesPerSecond: number, bytes: number }): Promise<void> {
    await this.db.query(`
      INSERT INTO petaldb_placements (doc, relay, placed_at, moved_from, updates_per_second, bytes) VALUES ($1, $2, now(), $3, $4, $5)
      ON CONFLICT (doc) DO UPDATE SET relay = excluded.relay, placed_at = excluded.placed_at, moved_from = excluded.moved_from,
        updates_per_second = excluded.updates_per_second, bytes = excluded.bytes`,
    [docId, relay, this.selfId, load.updatesPerSecond, Math.round(load.bytes)])
    const now = performance.now()
    this.view.set(docId, { relay, placedAt: now, movedFrom: this.selfId, updatesPerSecond: load.updatesPerSecond, bytes: load.bytes })
    this.reread.set(docId, now)
  }

  /** Deletes the placement of `docId` if it is on this relay (it evicted the document): its rendezvous home serves it again. */
  async removeHere (docId: DocId): Promise<void> {
    if (this.view.get(docId)?.relay === this.selfId) this.view.delete(docId)
    this.reread.set(docId, performance.now())
    await this.db.query('DELETE FROM petaldb_placements WHERE doc = $1 AND relay = $2', [docId, this.selfId])
  }

  /** Deletes every placement on this relay (a new run of it holds none of those documents). */
  async clearHere (): Promise<void> {
    const now = performance.now()
    for (const [docId, placement] of this.view) {
      if (placement.relay !== this.selfId) continue
      this.view.delete(docId)
      this.reread.set(docId, now)
    }
    await this.db.query('DELETE FROM petaldb_placements WHERE relay = $1', [this.selfId])
  }
}

/** A row as a placement; null if it is not valid. */
function placementOf (row: Row, now: number): Placement | null {
  // A row placed a moment ago may read a hair in the future: the statements' clocks are not one.
  const age = Math.max(0, Number(row.age))
  if (typeof row.doc !== 'string' || typeof row.relay !== 'string' || !Number.isFinite(age)) return null
  return {
    relay: row.relay,
    placedAt: now - age,
    movedFrom: typeof row.moved_from === 'string' ? row.moved_from : null,
    updatesPerSecond: figure(row.updates_per_second) ?? 0,
    bytes: figure(row.bytes) ?? 0
  }
}
