/**
 * A {@link DocStore} in PostgreSQL, for relays that share one database.
 *
 * Group commit: writes queue up and each batch is one transaction; the next batch starts
 * only when the previous COMMIT has returned, so writes that arrive meanwhile accumulate
 * into it, and a write resolves only after the COMMIT that holds it. Appends are one
 * multi-row INSERT per batch (more when compactions sit between them).
 *
 * Many writers share the database, as several SqliteStores share a file: each store keeps
 * the log rows it loaded or appended and the snapshot version it last saw. A compaction
 * locks the document's row (so two never run at once), deletes exactly those log rows (by
 * number: never a range, since a concurrent insert not yet committed may hold a lower
 * number) and keeps a snapshot it never saw as a log row. With `epochOf`, a compaction
 * also checks, in its transaction, that the relay's claim on the document still holds
 * (its fenced claims in `petaldb_owners`); if not it is refused alone with a
 * {@link FencedError}, and the rest of the batch commits.
 *
 * The store talks to the database through a {@link SqlClient} and loads no driver itself:
 * the relay hands it its pool (`pg`), whose schema it has migrated.
 */
import type { DocId } from '../wire/doc-id.js'
import type { StoredDoc } from './store.js'
import { BatchedStore, type BatchOutcome, type CommitInfo, type StoreWrite } from './batched-store.js'
import type { SqlClient, SqlQueryable } from './sql-client.js'
import { SeenRows, type SeenBatch } from './seen-rows.js'
import { FencedError } from '../errors.js'

/** Options of {@link PostgresStore}. */
export interface PostgresStoreOptions {
  /** Called after every successful group commit. */
  onCommit?: (info: CommitInfo) => void
  /**
   * For a relay that claims documents: the epoch of its claim on `docId`, or null for none.
   * A compaction commits only if the database still holds that epoch (none: refused).
   */
  epochOf?: (docId: DocId) => string | null
}

/** The snapshot row of a document as a compaction found it. */
interface SnapshotRow {
  snapshot: Uint8Array | null
  version: string
}

const NO_SNAPSHOT: SnapshotRow = { snapshot: null, version: '0' }

/** Appends per INSERT statement (two parameters each, well below PostgreSQL's 65,535). */
const APPENDS_PER_STATEMENT = 1000

/** Durable document storage in PostgreSQL; see the module comment. */
export class PostgresStore extends BatchedStore {
  /** The log rows (`seq`, as text) and snapshot version ('0': none) this store knows of each document; see seen-rows.ts. */
  private readonly seen = new SeenRows<string, string>('0')
  private readonly ownsDatabase: boolean

  /**
   * A store on `db`, whose PetalDB schema must be migrated already (a relay migrates it
   * when it starts). Closing the store closes `db` only if `ownsDatabase`.
   */
  constructor (private readonly db: SqlClient, private readonly options: PostgresStoreOptions = {}, ownsDatabase = false) {
    super()
    this.ownsDatabase = ownsDatabase
  }

  /** The database, named without its password (see `DocStore.name`). */
  get name (): string {
    return this.db.name
  }

  async load (docId: DocId): Promise<StoredDoc | null> {
    await this.written()
    // One statement: the snapshot and the log come from the same snapshot of the database.
    const [row] = await this.db.query<{ found: boolean, snapshot: Uint8Array | null, meta: Uint8Array | null, version: string | null, seqs: string[], updates: Uint8Array[] }>(`
      SELECT d.id IS NOT NULL AS found, d.snapshot, d.meta, d.version,
        ARRAY(SELECT seq FROM petaldb_updates WHERE doc = $1 ORDER BY seq) AS seqs,
        ARRAY(SELECT data FROM petaldb_updates WHERE doc = $1 ORDER BY seq) AS updates
      FROM (SELECT 1) AS one LEFT JOIN petaldb_docs d ON d.id = $1`, [docId])
    if (row === undefined || (!row.found && row.updates.length === 0)) return null
    this.seen.loaded(docId, row.seqs, row.version ?? '0')
    return { snapshot: bytesOrNull(row.snapshot), meta: bytesOrNull(row.meta), updates: row.updates.map(bytes) }
  }

  async list (prefix = ''): Promise<DocId[]> {
    await this.written()
    const rows = await this.db.query<{ id: DocId }>('SELECT id FROM petaldb_docs WHERE starts_with(id, $1) ORDER BY id', [prefix])
    return rows.map(row => row.id)
  }

  protected get description (): string {
    return `PostgresStore ${this.name}`
  }

  protected async commitBatch (writes: StoreWrite[]): Promise<BatchOutcome> {
    const started = performance.now()
    const { info, seen, refused } = await this.db.transaction(tx => this.apply(tx, writes))
    info.seconds = (performance.now() - started) / 1000
    // A failed transaction rolled back: what it would have taught about rows is dropped with it.
    this.seen.commit(seen)
    this.options.onCommit?.(info)
    return refused
  }

  protected async release (): Promise<void> {
    if (this.ownsDatabase) await this.db.close()
  }

  /** Writes `writes` in order in transaction `tx`; returns what the batch wrote and learned, and the writes refused alone. */
  private async apply (tx: SqlQueryable, writes: StoreWrite[]): Promise<{ info: CommitInfo, seen: SeenBatch<string, string>, refused: Map<StoreWrite, Error> }> {
    const info: CommitInfo = { updates: 0, compactions: 0, bytes: 0, seconds: 0 }
    const refused = new Map<StoreWrite, Error>()
    // What the batch teaches about rows, kept only once it has committed.
    const seen = this.seen.batch()

    // Rows first, in id order (so that two batches never wait for each other in opposite orders),
    // then the compacted documents' rows locked, and their claims checked, in one statement each.
    const written = sortedIds(writes.filter(write => write.kind !== 'delete'))
    if (written.length > 0) await tx.query('INSERT INTO petaldb_docs (id) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING', [written])
    const compacted = sortedIds(writes.filter(write => write.kind === 'compact'))
    const snapshots = new Map<DocId, SnapshotRow>()
    const fenced = new Set<DocId>()
    if (compacted.length > 0) {
      const rows = await tx.query<{ id: DocId, snapshot: Uint8Array | null, version: string }>('SELECT id, snapshot, version FROM petaldb_docs WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE', [compacted])
      for (const row of rows) snapshots.set(row.id, { snapshot: bytesOrNull(row.snapshot), version: row.version })
      for (const docId of await this.fenced(tx, compacted)) fenced.add(docId)
    }

    let appends: Array<{ docId: DocId, data: Uint8Array }> = []
    const insertAppends = async (): Promise<void> => {
      for (let start = 0; start < appends.length; start += APPENDS_PER_STATEMENT) {
        const chunk = appends.slice(start, start + APPENDS_PER_STATEMENT)
        // One parameter per value: bytes travel in binary, not as the hex text of an array literal.
        const rows = await tx.query<{ seq: string, doc: DocId }>(
          `INSERT INTO petaldb_updates (doc, data) VALUES ${chunk.map((_, i) => `($${2 * i + 1}, $${2 * i + 2})`).join(', ')} RETURNING seq, doc`,
          chunk.flatMap(append => [append.docId, append.data]))
        for (const row of rows) seen.of(row.doc).append(row.seq)
      }
      appends = []
    }
    // Metadata updates of a document are applied in order, and written once, at the end.
    const metas = new Map<DocId, Array<(current: Uint8Array | null) => Uint8Array | null>>()
    // Documents deleted in this batch, whose rows a later write must create again.
    const deleted = new Set<DocId>()

    for (const write of writes) {
      switch (write.kind) {
        case 'append':
          if (deleted.delete(write.docId)) await tx.query('INSERT INTO petaldb_docs (id) VALUES ($1) ON CONFLICT DO NOTHING', [write.docId])
          appends.push({ docId: write.docId, data: write.data })
          info.updates++
          info.bytes += write.data.length
          break
        case 'meta':
          metas.set(write.docId, [...metas.get(write.docId) ?? [], write.update])
          break
        case 'compact': {
          if (fenced.has(write.docId)) {
            refused.set(write, new FencedError(`another relay claimed ${write.docId}: this relay's compaction was refused`))
            break
          }
          await insertAppends()
          if (deleted.delete(write.docId)) await tx.query('INSERT INTO petaldb_docs (id) VALUES ($1) ON CONFLICT DO NOTHING', [write.docId])
          const entry = seen.of(write.docId)
          const current = snapshots.get(write.docId) ?? NO_SNAPSHOT
          // A snapshot another store wrote since this one last saw the document is kept, as a log row.
          if (current.snapshot !== null && current.version !== entry.version) {
            await tx.query('INSERT INTO petaldb_updates (doc, data) VALUES ($1, $2)', [write.docId, current.snapshot])
          }
          const version = (BigInt(current.version) + 1n).toString()
          await tx.query('UPDATE petaldb_docs SET snapshot = $2, version = $3 WHERE id = $1', [write.docId, write.data, version])
          const rows = entry.all
          if (rows.length > 0) await tx.query('DELETE FROM petaldb_updates WHERE doc = $1 AND seq = ANY($2::bigint[])', [write.docId, rows])
          entry.compacted(version)
          snapshots.set(write.docId, { snapshot: write.data, version })
          info.compactions++
          info.bytes += write.data.length
          break
        }
        case 'delete':
          await insertAppends()
          await tx.query('DELETE FROM petaldb_updates WHERE doc = $1', [write.docId])
          await tx.query('DELETE FROM petaldb_docs WHERE id = $1', [write.docId])
          metas.delete(write.docId)
          seen.deleted(write.docId)
          snapshots.set(write.docId, NO_SNAPSHOT)
          deleted.add(write.docId)
          break
      }
    }
    await insertAppends()
    await this.writeMetas(tx, metas)
    return { info, seen, refused }
  }

  /** Which of `docIds` this relay holds no claim on that the database still has (checked under a share lock until commit). */
  private async fenced (tx: SqlQueryable, docIds: DocId[]): Promise<DocId[]> {
    const epochOf = this.options.epochOf
    if (epochOf === undefined) return []
    const expected = new Map(docIds.map(docId => [docId, epochOf(docId)]))
    const rows = await tx.query<{ doc: DocId, epoch: string }>('SELECT doc, epoch FROM petaldb_owners WHERE doc = ANY($1::text[]) ORDER BY doc FOR SHARE', [[...expected.keys()]])
    const held = new Map(rows.map(row => [row.doc, row.epoch]))
    return [...expected].filter(([docId, epoch]) => held.get(docId) !== epoch).map(([docId]) => docId)
  }

  private async writeMetas (tx: SqlQueryable, metas: Map<DocId, Array<(current: Uint8Array | null) => Uint8Array | null>>): Promise<void> {
    if (metas.size === 0) return
    const ids = [...metas.keys()].sort()
    await tx.query('INSERT INTO petaldb_docs (id) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING', [ids])
    const rows = await tx.query<{ id: DocId, meta: Uint8Array | null }>('SELECT id, meta FROM petaldb_docs WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE', [ids])
    const current = new Map(rows.map(row => [row.id, bytesOrNull(row.meta)]))
    const values = ids.map(docId => {
      let meta = current.get(docId) ?? null
      for (const update of metas.get(docId)!) meta = update(meta)
      return meta
    })
    await tx.query('UPDATE petaldb_docs d SET meta = m.meta FROM unnest($1::text[], $2::bytea[]) AS m (id, meta) WHERE d.id = m.id', [ids, values])
  }
}

/** The distinct document ids of `writes`, sorted. */
function sortedIds (writes: StoreWrite[]): DocId[] {
  return [...new Set(writes.map(write => write.docId))].sort()
}

/** Bytes from the driver (`pg` gives Buffers) as a plain Uint8Array view (what every store returns). */
function bytes (buffer: Uint8Array): Uint8Array {
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength)
}

function bytesOrNull (buffer: Uint8Array | null): Uint8Array | null {
  return buffer === null ? null : bytes(buffer)
}
