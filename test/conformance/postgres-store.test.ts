import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { FencedError } from '../../shared/errors.js'
import { Ownership } from '../../server/postgres/ownership.js'
import { SCHEMA_VERSION, migrate } from '../../server/postgres/schema.js'
import { parseDocId } from '../../shared/wire/doc-id.js'
import type { CommitInfo } from '../../shared/storage/batched-store.js'
import { PostgresStore } from '../../shared/storage/postgres-store.js'
import { openPostgresStore } from '../../server/postgres/open-store.js'
import { Database } from '../../server/postgres/database.js'
import { silentLogger } from '../../shared/listen/logger.js'
import { runStoreConformance } from './store-conformance.js'
import { POSTGRES_MISSING, runPostgresTests, startPostgres, type TestPostgres } from '../helpers/postgres.js'

if (!runPostgresTests) console.warn(POSTGRES_MISSING)

describe.runIf(runPostgresTests)('PostgresStore on a real server', () => {
  let server: TestPostgres
  beforeAll(async () => { server = await startPostgres() })
  afterAll(async () => { await server?.destroy() })

  runStoreConformance('PostgresStore', async () => {
    const url = await server.createDatabase()
    const store = await openPostgresStore(url)
    return {
      store,
      reopen: async () => {
        await store.close()
        return await openPostgresStore(url)
      },
      // The first store migrated the schema: the second connects only.
      another: () => new PostgresStore(new Database(url, { logger: silentLogger }), {}, true)
    }
  }, { persistent: true })

  it('commits the writes of one turn in one transaction, and the next batch only after it', async () => {
    const commits: CommitInfo[] = []
    const store = await openPostgresStore(await server.createDatabase(), { onCommit: info => commits.push(info) })
    const doc = parseDocId('d')
    const first = Array.from({ length: 100 }, (_, i) => store.append(doc, new Uint8Array([i])))
    expect(commits).toEqual([])
    // Written while the first batch commits: they wait for it, and go together.
    await new Promise(resolve => setImmediate(resolve))
    const second = Array.from({ length: 50 }, (_, i) => store.append(doc, new Uint8Array([i])))
    await Promise.all(first)
    expect(commits).toEqual([{ updates: 100, compactions: 0, bytes: 100, seconds: expect.any(Number) }])
    await Promise.all(second)
    expect(commits).toEqual([{ updates: 100, compactions: 0, bytes: 100, seconds: expect.any(Number) }, { updates: 50, compactions: 0, bytes: 50, seconds: expect.any(Number) }])
    await store.close()
  })

  it('migrates the schema once when several relays start at the same moment', async () => {
    const url = await server.createDatabase()
    const dbs = Array.from({ length: 6 }, () => new Database(url, { logger: silentLogger }))
    await Promise.all(dbs.map(db => migrate(db)))
    // Each migration applied once, in order.
    expect(await dbs[0]!.query('SELECT version FROM petaldb_migrations ORDER BY version')).toEqual(Array.from({ length: SCHEMA_VERSION }, (_, i) => ({ version: i + 1 })))
    await Promise.all(dbs.map(db => db.close()))
  })

  it('keeps every update when two relays race to compact one document, round after round', async () => {
    const url = await server.createDatabase()
    const stores = [await openPostgresStore(url), await openPostgresStore(url)]
    const doc = parseDocId('raced')
    const writers = stores.map(() => new Y.Doc())
    let written = 0
    for (let round = 0; round < 15; round++) {
      await Promise.all(stores.map(async (store, i) => {
        // Each relay loads what is stored, appends its own updates, and compacts what it knows: at the same time as the other.
        const stored = await store.load(doc)
        const parts = stored === null ? [] : [...(stored.snapshot === null ? [] : [stored.snapshot]), ...stored.updates]
        const appended: Uint8Array[] = []
        for (let k = 0; k < 4; k++) {
          const update = captureUpdate(writers[i]!, () => writers[i]!.getArray('items').push([`${i}:${round}:${k}`]))
          appended.push(update)
          void store.append(doc, update)
          written++
        }
        await store.compact(doc, Y.mergeUpdates([...parts, ...appended]))
      }))
    }
    const reader = new Y.Doc()
    const stored = (await stores[0]!.load(doc))!
    for (const part of [stored.snapshot, ...stored.updates]) if (part !== null) Y.applyUpdate(reader, part)
    expect(reader.getArray('items').length).toBe(written)
    await Promise.all(stores.map(store => store.close()))
  })

  it('refuses the compaction of a relay whose claim another relay took, alone in its batch', async () => {
    const url = await server.createDatabase()
    const admin = await openPostgresStore(url)
    const db = new Database(url, { logger: silentLogger })
    await db.query(`INSERT INTO petaldb_relays (id, url, incarnation, renewed_at, lease_until) VALUES
      ('a', 'ws://127.0.0.1:1', 'a1', now(), now() + interval '1 minute'), ('b', 'ws://127.0.0.1:2', 'b1', now(), now() + interval '1 minute')`)
    const [ownsA, ownsB] = [new Ownership(db, () => ({ id: 'a', incarnation: 'a1' })), new Ownership(db, () => ({ id: 'b', incarnation: 'b1' }))]
    const doc = parseDocId('fenced')
    const a = new PostgresStore(new Database(url, { logger: silentLogger }), { epochOf: docId => ownsA.epochOf(docId) }, true)
    const b = new PostgresStore(new Database(url, { logger: silentLogger }), { epochOf: docId => ownsB.epochOf(docId) }, true)
    expect(await ownsA.claim(doc)).toEqual({ claimed: true, epoch: '1' })
    // b cannot claim what a live relay holds; once a's lease has expired (a was paused), it can.
    expect(await ownsB.claim(doc)).toEqual({ claimed: false, owner: 'a' })
    await db.query(`UPDATE petaldb_relays SET lease_until = now() - interval '1 second' WHERE id = 'a'`)
    expect(await ownsB.claim(doc)).toEqual({ claimed: true, epoch: '2' })
    // a does not know yet: its append commits (updates commute), its compaction is refused.
    await a.append(doc, new Uint8Array([1]))
    const appended = a.append(parseDocId('other'), new Uint8Array([2]))
    const compacted = a.compact(doc, new Uint8Array([9]))
    await expect(compacted).rejects.toBeInstanceOf(FencedError)
    await appended
    expect(await ownsA.lost([doc])).toEqual([{ docId: doc, owner: 'b' }])
    expect((await admin.load(doc))!.snapshot).toBeNull()
    await b.load(doc)
    await b.compact(doc, new Uint8Array([8]))
    const stored = (await admin.load(doc))!
    expect([...stored.snapshot!]).toEqual([8])
    expect(stored.updates).toEqual([])
    // A compaction of a document the relay holds no claim on is refused too.
    await expect(b.compact(parseDocId('unclaimed'), new Uint8Array([7]))).rejects.toBeInstanceOf(FencedError)
    await Promise.all([a.close(), b.close(), admin.close(), db.close()])
  })
})

/** The update `change` makes to `doc`. */
function captureUpdate (doc: Y.Doc, change: () => void): Uint8Array {
  let update: Uint8Array | null = null
  const capture = (u: Uint8Array): void => { update = u }
  doc.on('update', capture)
  change()
  doc.off('update', capture)
  return update!
}
