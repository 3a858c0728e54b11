import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { parseDocId } from '../../shared/wire/doc-id.js'
import { MemoryStore } from '../../shared/storage/memory-store.js'
import { PersistedDoc } from '../../shared/storage/persisted-doc.js'
import { DocLoadError } from '../../shared/errors.js'

const id = parseDocId('doc')

async function bind (store: MemoryStore, compactMinBytes = 1024): Promise<PersistedDoc> {
  const persisted = await PersistedDoc.load(store, id, new Y.Doc(), { compactMinBytes })
  persisted.ydoc.on('update', (update: Uint8Array) => { void persisted.write(update) })
  return persisted
}

describe('PersistedDoc', () => {
  it('compacts a long log into a snapshot and a short log, and reloads the same state', async () => {
    const store = new MemoryStore()
    const persisted = await bind(store)
    const text = persisted.ydoc.getText('t')
    for (let i = 0; i < 2000; i++) text.insert(text.length, String(i % 10))
    const stored = (await store.load(id))!
    expect(stored.snapshot).not.toBeNull()
    const logBytes = stored.updates.reduce((sum, u) => sum + u.length, 0)
    expect(logBytes).toBeLessThanOrEqual(Math.max(stored.snapshot!.length, 1024))
    const reloaded = await PersistedDoc.load(store, id, new Y.Doc())
    expect(reloaded.ydoc.getText('t').toString()).toBe(text.toString())
  })

  it('does not grow the store when a document is opened again and again without edits', async () => {
    const store = new MemoryStore()
    const first = await bind(store)
    first.ydoc.getText('t').insert(0, 'stable')
    const before = JSON.stringify(await store.load(id))
    for (let i = 0; i < 10; i++) await bind(store)
    expect(JSON.stringify(await store.load(id))).toBe(before)
  })

  it('refuses stored data that does not decode and leaves it untouched', async () => {
    const store = new MemoryStore()
    const first = await bind(store)
    first.ydoc.getText('t').insert(0, 'precious')
    const good = Y.encodeStateAsUpdate(first.ydoc)
    await store.append(id, good.slice(0, good.length - 3))
    const before = JSON.stringify(await store.load(id))
    await expect(PersistedDoc.load(store, id, new Y.Doc())).rejects.toThrow(DocLoadError)
    expect(JSON.stringify(await store.load(id))).toBe(before)
  })
})
