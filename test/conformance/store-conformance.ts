/**
 * The conformance suite every DocStore passes. Call it from the store's test file with a
 * factory; `reopen` (for persistent stores) closes the store and opens it again.
 */
import { describe, expect, it } from 'vitest'
import { parseDocId } from '../../shared/wire/doc-id.js'
import type { DocStore } from '../../shared/storage/store.js'

export interface StoreFixture {
  store: DocStore
  /** Closes `store` and returns a new instance over the same data; absent for stores that do not persist. */
  reopen?: () => Promise<DocStore>
  /** Another writer of the same storage, open at the same time (another tab, another process); absent for stores that cannot be shared. */
  another?: () => DocStore
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

    it('keeps metadata beside the log, updated in order by each write and untouched by compaction', async () => {
      const { store } = await setup()
      await store.updateMeta(a, () => bytes(1, 1))
      expect(await store.list()).toEqual([a])
      void store.append(a, bytes(1))
      void store.updateMeta(a, current => bytes(current![0]! + 1, 2))
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

    it('lists ids in byte order, and takes a prefix literally', async () => {
      const { store } = await setup()
      const ids = ['notes_a', '~x', 'notes/a', 'Notes', 'notesXa', 'notes.a']
      for (const id of ids) await store.append(parseDocId(id), bytes(1))
      expect(await store.list()).toEqual(['Notes', 'notes.a', 'notes/a', 'notesXa', 'notes_a', '~x'])
      // Characters that are wildcards in LIKE patterns or regular expressions match only themselves.
      expect(await store.list('notes_')).toEqual(['notes_a'])
      expect(await store.list('notes.')).toEqual(['notes.a'])
      expect(await store.list('nothing')).toEqual([])
      await store.close()
    })

    it('deletes a compacted document with its metadata, and a later write starts it afresh', async () => {
      const { store } = await setup()
      await store.append(a, bytes(1))
      await store.compact(a, bytes(5))
      await store.append(a, bytes(2))
      await store.updateMeta(a, () => bytes(3))
      await store.delete(a)
      expect(await store.load(a)).toBeNull()
      expect(await store.list()).toEqual([])
      await store.append(a, bytes(4))
      const stored = await store.load(a)
      expect(stored!.snapshot).toBeNull()
      expect(stored!.meta).toBeNull()
      expect(stored!.updates.map(u => [...u])).toEqual([[4]])
      await store.compact(a, bytes(6))
      expect([...(await store.load(a))!.snapshot!]).toEqual([6])
      expect((await store.load(a))!.updates).toEqual([])
      await store.close()
    })

    if (persistent) it('keeps what was written across a reopen', async () => {
      const fixture = await setup()
      void fixture.store.append(a, bytes(1))
      void fixture.store.compact(a, bytes(5))
      void fixture.store.append(a, bytes(2))
      void fixture.store.updateMeta(a, () => bytes(3))
      const reopened = await fixture.reopen!()
      const stored = await reopened.load(a)
      expect([...stored!.snapshot!]).toEqual([5])
      expect(stored!.updates.map(u => [...u])).toEqual([[2]])
      expect([...stored!.meta!]).toEqual([3])
      await reopened.close()
    })

    it('lists the documents that hold metadata only (where it can), and no other', async () => {
      const { store } = await setup()
      if (store.metaOnly === undefined) return await store.close()
      const c = parseDocId('notes/c')
      await store.updateMeta(a, () => bytes(7))
      await store.append(b, bytes(1))
      await store.updateMeta(b, () => bytes(8))
      await store.compact(c, bytes(2))
      await store.updateMeta(c, () => bytes(9))
      expect((await store.metaOnly()).map(({ docId, meta }) => [docId, [...meta]])).toEqual([[a, [7]]])
      await store.delete(b)
      await store.updateMeta(b, () => bytes(10))
      expect((await store.metaOnly()).map(({ docId }) => docId)).toEqual([a, b])
      await store.close()
    })

    it('removes metadata when an update returns null', async () => {
      const { store } = await setup()
      await store.append(a, bytes(1))
      await store.updateMeta(a, () => bytes(4))
      await store.updateMeta(a, () => null)
      expect((await store.load(a))!.meta).toBeNull()
      await store.close()
    })

    if (persistent) it('shares the storage with another writer: no compaction drops the other\'s updates or snapshot', async () => {
      const fixture = await setup()
      const first = fixture.store
      const second = fixture.another!()
      await first.append(a, bytes(1))
      expect((await second.load(a))!.updates.map(u => [...u])).toEqual([[1]])
      await second.append(a, bytes(2))
      // The first writer never saw update 2: its snapshot replaces only update 1.
      await first.compact(a, bytes(9))
      // The second never saw snapshot 9: it is kept, as an update, beside the second's snapshot.
      await second.compact(a, bytes(8))
      await Promise.all([first.updateMeta(a, current => bytes(...current ?? [], 1)), second.updateMeta(a, current => bytes(...current ?? [], 2))])
      const reader = await fixture.reopen!()
      const stored = await reader.load(a)
      expect([...stored!.snapshot!]).toEqual([8])
      expect(stored!.updates.map(u => [...u])).toEqual([[9]])
      expect([...stored!.meta!].sort()).toEqual([1, 2])
      await Promise.all([second.close(), reader.close()])
    })
  })
}
