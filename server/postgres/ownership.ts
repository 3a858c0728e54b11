/**
 * Which relay serves each document, fenced by an epoch. A relay claims a document before it
 * serves it: one statement that succeeds only while the claiming relay's own lease holds,
 * and only if the document is free (never claimed, released, or claimed by a relay whose
 * lease has expired, or by an earlier run of the same relay); it bumps the document's epoch
 * and returns it. The relay's store checks that epoch in every compaction's transaction
 * (see shared/storage/postgres-store.ts), so a relay that lost a document while it was paused or cut off
 * can never compact what another relay now serves; its late appends are harmless, since
 * updates commute. A relay releases a document when it stops serving it, so that the next
 * relay need not wait for its lease to run out, and releases every claim an earlier run of
 * it left whenever it registers (see membership.ts).
 */
import type { DocId } from '../../shared/wire/doc-id.js'
import type { Database } from './database.js'

/** What a claim found. */
export type ClaimResult =
  | { claimed: true, epoch: string }
  /** `owner`: the relay that holds the document (null if this relay's own lease had expired). */
  | { claimed: false, owner: string | null }

/** See the module comment. */
export class Ownership {
  private readonly epochs = new Map<DocId, string>()

  constructor (private readonly db: Database, private readonly self: () => { id: string, incarnation: string }) {}

  /** The epoch of this relay's claim on `docId`, or null if it holds none. */
  epochOf (docId: DocId): string | null {
    return this.epochs.get(docId) ?? null
  }

  /** Documents this relay holds claims on. */
  get claimed (): DocId[] {
    return [...this.epochs.keys()]
  }

  /** Claims `docId` if it is free; see the module comment. */
  async claim (docId: DocId): Promise<ClaimResult> {
    const { id, incarnation } = this.self()
    const rows = await this.db.query<{ epoch: string }>(`
      INSERT INTO petaldb_owners AS o (doc, relay, epoch)
      SELECT $1, $2, 1 FROM petaldb_relays WHERE id = $2 AND incarnation = $3 AND lease_until > now()
      ON CONFLICT (doc) DO UPDATE SET relay = excluded.relay, epoch = o.epoch + 1
      WHERE o.relay IS NULL OR o.relay = excluded.relay
        OR NOT EXISTS (SELECT 1 FROM petaldb_relays r WHERE r.id = o.relay AND r.lease_until > now())
      RETURNING epoch`, [docId, id, incarnation])
    const epoch = rows[0]?.epoch
    if (epoch !== undefined) {
      this.epochs.set(docId, epoch)
      return { claimed: true, epoch }
    }
    const [owner] = await this.db.query<{ relay: string | null }>('SELECT relay FROM petaldb_owners WHERE doc = $1', [docId])
    return { claimed: false, owner: owner?.relay === id ? null : owner?.relay ?? null }
  }

  /**
   * Gives up this relay's claim `epoch` on `docId` (a no-op if another claim, this relay's
   * or another's, was made since), so the next relay to serve it need not wait.
   */
  async release (docId: DocId, epoch: string): Promise<void> {
    if (this.epochs.get(docId) === epoch) this.epochs.delete(docId)
    await this.db.query('UPDATE petaldb_owners SET relay = NULL WHERE doc = $1 AND epoch = $2', [docId, epoch])
  }

  /** Gives up every claim this relay holds (when it stops). */
  async releaseAll (): Promise<void> {
    const held = [...this.epochs]
    this.epochs.clear()
    if (held.length === 0) return
    await this.db.query('UPDATE petaldb_owners o SET relay = NULL FROM unnest($1::text[], $2::bigint[]) AS h (doc, epoch) WHERE o.doc = h.doc AND o.epoch = h.epoch',
      [held.map(([docId]) => docId), held.map(([, epoch]) => epoch)])
  }

  /** Forgets every claim without telling the database (after this relay's lease lapsed: others may claim them anyway). */
  forgetAll (): void {
    this.epochs.clear()
  }

  /** The documents among `docIds` whose claim another relay took since this one made it. */
  async lost (docIds: DocId[]): Promise<Array<{ docId: DocId, owner: string | null }>> {
    const held = docIds.filter(docId => this.epochs.has(docId))
    if (held.length === 0) return []
    const rows = await this.db.query<{ doc: DocId, relay: string | null, epoch: string }>('SELECT doc, relay, epoch FROM petaldb_owners WHERE doc = ANY($1::text[])', [held])
    const current = new Map(rows.map(row => [row.doc, row]))
    return held.flatMap(docId => {
      const row = current.get(docId)
      // Still ours, or released by this relay itself meanwhile.
      if (row === undefined || row.epoch === this.epochs.get(docId) || !this.epochs.has(docId)) return []
      this.epochs.delete(docId)
      return [{ docId, owner: row.relay }]
    })
  }
}
