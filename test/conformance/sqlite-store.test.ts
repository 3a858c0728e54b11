import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { parseDocId } from '../../shared/wire/doc-id.js'
import { SqliteStore, type CommitInfo } from '../../shared/storage/sqlite-store.js'
import { runStoreConformance } from './store-conformance.js'
import { tempDir } from '../helpers/temp.js'

const dir = tempDir()
let counter = 0
const freshPath = (): string => join(dir, `store-${counter++}`, 'relay.db')

runStoreConformance('SqliteStore', async () => {
  const path = freshPath()
  const store = new SqliteStore(path)
  return {
    store,
    reopen: async () => {
      await store.close()
      return new SqliteStore(path)
    },
    another: () => new SqliteStore(path)
  }
}, { persistent: true })

describe('SqliteStore group commit', () => {
  it('commits writes made in the same turn in one transaction, and resolves them after it', async () => {
    const commits: CommitInfo[] = []
    const store = new SqliteStore(freshPath(), { onCommit: info => commits.push(info) })
    const doc = parseDocId('d')
    const writes = Array.from({ length: 100 }, (_, i) => store.append(doc, new Uint8Array([i])))
    expect(commits).toEqual([])
    await Promise.all(writes)
    expect(commits).toEqual([{ updates: 100, compactions: 0, bytes: 100, seconds: expect.any(Number) }])
    await store.close()
  })

  it('rejects writes after close with a clear error', async () => {
    const store = new SqliteStore(freshPath())
    await store.close()
    await expect(store.append(parseDocId('d'), new Uint8Array([1]))).rejects.toThrow(/closed/)
  })
})
