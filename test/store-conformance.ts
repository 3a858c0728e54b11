/**
 * The conformance suite every DocStore passes. Call it from the store's test file with a
 * factory; `reopen` (for persistent stores) closes the store and opens it again.
 */
import { describe, expect, it } from 'vitest'
import { parseDocId } from '../shared/wire/doc-id.js'
import type { DocStore } from '../shared/storage/store.js'

export interface StoreFixture {
  store: DocStore
  /** Closes `store` and returns a new instance over the same data; absent for stores that do not persist. */
  reopen?: () => Promise<DocStore>
}

const bytes = (...values: number[]): Uint8Array => new Uint8Array(values)
const a = parseDocId('notes/a')
const b = parseDocId('notes/b')

export function runStoreConformance (name: string, setup: () => Promise<StoreFixture>, { persistent }: { persistent: boolean }): void {
  describe(`${name} (store conformance)`, () => {
    it('returns null for a document never written', async () => {
      const { store } = await setup()
      expect(await store.load(a)).toBeNull()
      await store.close()
    })

    it('returns appended updates in order, with no snapshot', async () => {
      const { store } = await setup()
      await Promise.all([store.append(a, bytes(1)), store.append(a, bytes(2)), store.append(a, bytes(3))])
      const stored = await store.load(a)
      expect(stored?.snapshot ?? null).toBeNull()
      expect(stored?.updates.map(u => [...u])).toEqual([[1], [2], [3]])
      await store.close()
    })

    it('sees writes that were not awaited', async () => {
      const { store } = await setup()
      void store.append(a, bytes(7))
      expect((await store.load(a))?.updates.map(u => [...u])).toEqual([[7]])
      await store.close()
    })

    it('compaction replaces exactly the updates appended before it', async () => {
      const { store } = await setup()
      void store.append(a, bytes(1))
      void store.append(a, bytes(2))
      const compacted = store.compact(a, bytes(9, 9))
      void store.append(a, bytes(3))
      await compacted
      const stored = await store.load(a)
      expect([...stored!.snapshot!]).toEqual([9, 9])
      expect(stored!.updates.map(u => [...u])).toEqual([[3]])
      await store.close()
    })

    it('keeps metadata beside the log, replaced by each write and untouched by compaction', async () => {
      const { store } = await setup()
      await store.setMeta(a, bytes(1, 1))
      expect(await store.list()).toEqual([a])
      void store.append(a, bytes(1))
      void store.setMeta(a, bytes(2, 2))
      void store.compact(a, bytes(8))
      const stored = await store.load(a)
      expect([...stored!.meta!]).toEqual([2, 2])
      expect([...stored!.snapshot!]).toEqual([8])
      expect((await store.load(b))).toBeNull()
      await store.close()
    })

    it('keeps documents apart, lists them by prefix and deletes one', async () => {
      const { store } = await setup()
      await store.append(a, bytes(1))
      await store.append(b, bytes(2))
      await store.append(parseDocId('notesX'), bytes(3))
      await store.append(parseDocId('other'), bytes(4))
      expect(await store.list('notes/')).toEqual([a, b])
      expect(await store.list()).toEqual([a, b, 'notesX', 'other'])
      await store.delete(a)
      expect(await store.load(a)).toBeNull()
      expect((await store.load(b))?.updates.map(u => [...u])).toEqual([[2]])
      expect(await store.list('notes/')).toEqual([b])
      await store.close()
    })

    if (persistent) it('keeps what was written across a reopen', async () => {
      const fixture = await setup()
      void fixture.store.append(a, bytes(1))
      void fixture.store.compact(a, bytes(5))
      void fixture.store.append(a, bytes(2))
      void fixture.store.setMeta(a, bytes(3))
      const reopened = await fixture.reopen!()
      const stored = await reopened.load(a)
      expect([...stored!.snapshot!]).toEqual([5])
      expect(stored!.updates.map(u => [...u])).toEqual([[2]])
      expect([...stored!.meta!]).toEqual([3])
      await reopened.close()
    })
  })
}
