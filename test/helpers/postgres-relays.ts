/**
 * Relays on one PostgreSQL database, each a child process started from the built CLI
 * (`--postgres URL --id ID`) on a port of its own that it keeps across restarts, and a
 * reader of what the database holds.
 */
import * as Y from 'yjs'
import { parseDocId } from '../../shared/wire/doc-id.js'
import { openPostgresStore } from '../../server/postgres/open-store.js'
import { freePort, startRelayProcess, type RelayProcess } from './relay-process.js'

export interface PostgresRelay {
  id: string
  port: number
  url: string
  process: RelayProcess | null
}

export interface PostgresRelays {
  relays: PostgresRelay[]
  byId(id: string): PostgresRelay
  /** Starts (or restarts) relay `id`, adding it if it is new. */
  start(id: string): Promise<RelayProcess>
  /** kill -9 of relay `id`. */
  kill(id: string): Promise<void>
  /** Stops every relay (default SIGKILL). */
  stopAll(signal?: NodeJS.Signals): Promise<void>
}

export interface PostgresRelaySettings {
  /** --lease-ms (default 1000: tests wait for leases to run out). */
  leaseMs?: number
  extraArgs?: string[]
}

/** Starts relays `ids` on `databaseUrl`. */
export async function startPostgresRelays (databaseUrl: string, ids: string[], settings: PostgresRelaySettings = {}): Promise<PostgresRelays> {
  const relays: PostgresRelay[] = []
  const byId = (id: string): PostgresRelay => {
    const relay = relays.find(r => r.id === id)
    if (relay === undefined) throw new Error(`no relay ${id}`)
    return relay
  }
  const group: PostgresRelays = {
    relays,
    byId,
    async start (id) {
      let relay = relays.find(r => r.id === id)
      if (relay === undefined) {
        const port = await freePort()
        relay = { id, port, url: `ws://127.0.0.1:${port}`, process: null }
        relays.push(relay)
      }
      await relay.process?.stop('SIGKILL')
      relay.process = await startRelayProcess(null, ['--postgres', databaseUrl, '--id', id, '--lease-ms', String(settings.leaseMs ?? 1000), ...(settings.extraArgs ?? [])], relay.port)
      return relay.process
    },
    async kill (id) {
      const relay = byId(id)
      await relay.process?.stop('SIGKILL')
      relay.process = null
    },
    async stopAll (signal = 'SIGKILL') {
      await Promise.all(relays.map(r => r.process?.stop(signal)))
      for (const r of relays) r.process = null
    }
  }
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
