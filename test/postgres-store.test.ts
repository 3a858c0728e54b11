import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseDocId } from '../shared/wire/doc-id.js'
import type { CommitInfo } from '../shared/storage/batched-store.js'
import { PostgresStore } from '../server/postgres/postgres-store.js'
import { Database } from '../server/postgres/database.js'
import { silentLog } from '../shared/listen/log.js'
import { runStoreConformance } from './store-conformance.js'
import { POSTGRES_MISSING, runPostgresTests, startPostgres, type TestPostgres } from './helpers/postgres.js'

if (!runPostgresTests) console.warn(POSTGRES_MISSING)

describe.runIf(runPostgresTests)('PostgresStore on a real server', () => {
  let server: TestPostgres
  beforeAll(async () => { server = await startPostgres() })
  afterAll(async () => { await server?.destroy() })

  runStoreConformance('PostgresStore', async () => {
    const url = await server.createDatabase()
    const store = await PostgresStore.open(url)
    return {
      store,
      reopen: async () => {
        await store.close()
        return await PostgresStore.open(url)
      },
      // The first store migrated the schema: the second connects only.
      another: () => new PostgresStore(new Database(url, { log: silentLog }), {}, true)
    }
  }, { persistent: true })

  it('commits the writes of one turn in one transaction, and the next batch only after it', async () => {
    const commits: CommitInfo[] = []
    const store = await PostgresStore.open(await server.createDatabase(), { onCommit: info => commits.push(info) })
    const doc = parseDocId('d')
    const first = Array.from({ length: 100 }, (_, i) => store.append(doc, new Uint8Array([i])))
    expect(commits).toEqual([])
    // Written while the first batch commits: they wait for it, and go together.
    await new Promise(resolve => setImmediate(resolve))
    const second = Array.from({ length: 50 }, (_, i) => store.append(doc, new Uint8Array([i])))
    await Promise.all(first)
    expect(commits).toEqual([{ updates: 100, compactions: 0, bytes: 100 }])
    await Promise.all(second)
    expect(commits).toEqual([{ updates: 100, compactions: 0, bytes: 100 }, { updates: 50, compactions: 0, bytes: 50 }])
    await store.close()
  })
})
