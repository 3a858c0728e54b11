/**
 * Relays on one PostgreSQL database, each a child process started from the built CLI
 * (`--postgres URL --id ID`) on a port of its own that it keeps across restarts, and a
 * reader of what the database holds.
 */
import * as Y from 'yjs'
import { parseDocId } from '../../shared/wire/doc-id.js'
import { openPostgresStore } from '../../server/postgres/open-store.js'
import { relayGroup, startRelayProcess, type GroupRelay, type RelayGroup } from './relay-process.js'

export type PostgresRelay = GroupRelay

export type PostgresRelays = RelayGroup<PostgresRelay>

export interface PostgresRelaySettings {
  /** --lease-ms (default 1000: tests wait for leases to run out). */
  leaseMs?: number
  extraArgs?: string[]
}

/** Starts relays `ids` on `databaseUrl`. */
export async function startPostgresRelays (databaseUrl: string, ids: string[], settings: PostgresRelaySettings = {}): Promise<PostgresRelays> {
  const group = relayGroup<PostgresRelay>(
    (id, port) => ({ id, port, url: `ws://127.0.0.1:${port}`, process: null }),
    relay => startRelayProcess(null, ['--postgres', databaseUrl, '--id', relay.id, '--lease-ms', String(settings.leaseMs ?? 1000), ...(settings.extraArgs ?? [])], relay.port)
  )
  await Promise.all(ids.map(id => group.start(id)))
  return group
}

/** What the database holds for each of `docIds`, as Y.Docs (read by a store of its own, as any other writer could). */
export async function inDatabase (databaseUrl: string, docIds: string[]): Promise<Map<string, Y.Doc>> {
  const store = await openPostgresStore(databaseUrl)
  try {
    const docs = new Map<string, Y.Doc>()
    for (const docId of docIds) {
      const doc = new Y.Doc()
      // Read only: a replica's load could compact, and this reader must not change what it checks.
      const stored = await store.load(parseDocId(docId))
      for (const part of stored === null ? [] : [stored.snapshot, ...stored.updates]) if (part !== null) Y.applyUpdate(doc, part)
      docs.set(docId, doc)
    }
    return docs
  } finally {
    await store.close()
  }
}

/** GET /healthz of a relay: its HTTP status and figures. */
export async function healthOf (url: string): Promise<{ status: number, body: { status: string, reason?: string, documents: number, clients: number } }> {
  const response = await fetch(url.replace(/^ws/, 'http') + '/healthz')
  return { status: response.status, body: await response.json() as { status: string, reason?: string, documents: number, clients: number } }
}
