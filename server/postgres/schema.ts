/**
 * The relay's tables in PostgreSQL, created and changed by numbered migrations that each
 * relay applies at start. The migrations run in one transaction under a transaction-level
 * advisory lock, so relays that start at the same moment apply each migration once: the
 * others wait for the lock, then find it applied. Every table is prefixed `petaldb_`, so
 * the relay can share a database with an application.
 *
 * - `petaldb_docs`: per document its snapshot (and the version counting its compactions),
 *   its metadata; a row exists once anything was written.
 * - `petaldb_updates`: the update log, one row per update, numbered by an identity column.
 * - `petaldb_relays`: live relays, each with its advertised URL and a lease on the
 *   database's clock.
 * - `petaldb_owners`: which relay serves each document, and an epoch bumped by every claim
 *   (the fencing token checked by compaction).
 * - Version 2, load placement: each relay's load, published on its heartbeat (columns of
 *   `petaldb_relays`), and `petaldb_placements`, the documents placed away from their
 *   rendezvous home by load (small: a row goes when its relay evicts the document or is
 *   no longer live).
 */
import type { Database } from './database.js'

/** Ids compare byte by byte (the "C" collation), as in SQLite, so listings sort the same on both stores. */
const MIGRATIONS: Array<{ version: number, sql: string }> = [
  {
    version: 1,
    sql: `
      CREATE TABLE petaldb_docs (
        id text COLLATE "C" PRIMARY KEY,
        snapshot bytea,
        version bigint NOT NULL DEFAULT 0,
        meta bytea
      );
      CREATE TABLE petaldb_updates (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        doc text COLLATE "C" NOT NULL,
        data bytea NOT NULL
      );
      CREATE INDEX petaldb_updates_by_doc ON petaldb_updates (doc, seq);
      CREATE TABLE petaldb_relays (
        id text PRIMARY KEY,
        url text NOT NULL,
        incarnation text NOT NULL,
        renewed_at timestamptz NOT NULL,
        lease_until timestamptz NOT NULL
      );
      CREATE TABLE petaldb_owners (
        doc text COLLATE "C" PRIMARY KEY,
        relay text,
        epoch bigint NOT NULL
      );
    `
  },
  {
    version: 2,
    sql: `
      ALTER TABLE petaldb_relays
        ADD COLUMN load_seq bigint,
        ADD COLUMN updates_per_second double precision,
        ADD COLUMN bytes_per_second double precision,
        ADD COLUMN event_loop_utilization double precision,
        ADD COLUMN connections integer,
        ADD COLUMN document_bytes bigint,
        ADD COLUMN hot_documents jsonb;
      CREATE TABLE petaldb_placements (
        doc text COLLATE "C" PRIMARY KEY,
        relay text NOT NULL,
        placed_at timestamptz NOT NULL DEFAULT now(),
        moved_from text,
        updates_per_second double precision NOT NULL DEFAULT 0,
        bytes bigint NOT NULL DEFAULT 0
      );
      CREATE INDEX petaldb_placements_by_relay ON petaldb_placements (relay);
    `
  }
]

/** The schema version this code needs. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version

/** The advisory lock key of migrations ("petaldb" in ASCII). */
const MIGRATION_LOCK = 0x7065_7461_6c64_62n

/**
 * Brings the database's schema up to {@link SCHEMA_VERSION}. Throws if the database was
 * migrated by a newer relay than this one.
 */
export async function migrate (db: Database): Promise<void> {
  await db.transaction(async tx => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK.toString()])
    await tx.query('CREATE TABLE IF NOT EXISTS petaldb_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())')
    const [row] = await tx.query<{ version: number | null }>('SELECT max(version) AS version FROM petaldb_migrations')
    const current = row?.version ?? 0
    if (current > SCHEMA_VERSION) throw new Error(`the database's PetalDB schema is version ${current}, newer than this relay's (${SCHEMA_VERSION}): upgrade the relay`)
    for (const migration of MIGRATIONS) {
      if (migration.version <= current) continue
      await tx.query(migration.sql)
      await tx.query('INSERT INTO petaldb_migrations (version) VALUES ($1)', [migration.version])
    }
  })
}
