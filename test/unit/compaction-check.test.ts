/**
 * Whatever replaces a relay document's stored parts is checked against them first. Here
 * Yjs is made to lose data (a merge that drops an update, a snapshot that drops
 * everything): a compaction that fails its check is logged, changes nothing stored, and is
 * retried only once the log has grown by half; a merge that fails it is logged and served
 * from a Y.Doc instead.
 */
import { describe, expect, it, vi } from 'vitest'
import * as Y from 'yjs'
import { parseDocId } from '../../shared/wire/doc-id.js'
import { MemoryStore } from '../../shared/storage/memory-store.js'
import { StoredDocument } from '../../server/documents/stored-document.js'
import { captureLog } from '../helpers/log-capture.js'

const broken = vi.hoisted(() => ({ merge: false, snapshot: false }))

vi.mock('yjs', async importOriginal => {
  const yjs = await importOriginal<typeof import('yjs')>()
  return {
    ...yjs,
    // A merge that loses the first update; a snapshot that holds nothing.
    mergeUpdates: (updates: Uint8Array[]) => broken.merge ? yjs.mergeUpdates(updates.slice(1)) : yjs.mergeUpdates(updates),
    encodeStateAsUpdate: (doc: Y.Doc, vector?: Uint8Array) => broken.snapshot ? new Uint8Array([0, 0]) : yjs.encodeStateAsUpdate(doc, vector)
  }
})

const id = parseDocId('checked')

async function write (doc: StoredDocument, update: Uint8Array): Promise<void> {
  const prepared = doc.checks.prepare(update)
  if (prepared !== null) await doc.append(prepared)
}

/** `count` updates of a writer appending to an array. */
function appends (count: number, source = new Y.Doc()): Uint8Array[] {
  const updates: Uint8Array[] = []
  source.on('update', (update: Uint8Array) => updates.push(update))
  for (let i = 0; i < count; i++) source.getArray('a').push([`item ${i}`])
  return updates
}

describe('checked compaction', () => {
  it('compacts from a Y.Doc when a merge loses data, and says so', async () => {
    broken.merge = true
    try {
      const store = new MemoryStore()
      const log = captureLog('error')
      const doc = await StoredDocument.load(store, id, { compactMinBytes: 256, logger: log.logger })
      for (const update of appends(50)) await write(doc, update)
      expect(log.entries.map(entry => entry.msg)).toContain('merging the stored updates lost data; encoding them from a Y.Doc instead')
      const snapshot = (await store.load(id))!.snapshot!
      const fresh = new Y.Doc()
      Y.applyUpdate(fresh, snapshot)
      expect(fresh.getArray('a').length).toBeGreaterThan(10)
    } finally {
      broken.merge = false
    }
  })

  it('keeps the log when no snapshot holds what was stored, logs it, and retries once the log has grown by half', async () => {
    broken.merge = broken.snapshot = true
    try {
      const store = new MemoryStore()
      const log = captureLog('error')
      const doc = await StoredDocument.load(store, id, { compactMinBytes: 256, logger: log.logger })
      const updates = appends(200)
      const failures = (): number => log.entries.filter(entry => String(entry.msg).startsWith('compaction failed')).length
      let written = 0
      let firstFailureAt = 0
      for (const update of updates) {
        await write(doc, update)
        written += update.length
        if (failures() === 1 && firstFailureAt === 0) firstFailureAt = written
      }
      expect(firstFailureAt).toBeGreaterThan(256)
      // One attempt when due, the next only at 1.5 times that log size, and so on: not one per write.
      expect(failures()).toBeGreaterThan(1)
      expect(failures()).toBeLessThanOrEqual(1 + Math.ceil(Math.log(written / firstFailureAt) / Math.log(1.5)))
      const stored = (await store.load(id))!
      expect(stored.snapshot).toBeNull()
      expect(stored.updates).toHaveLength(200)
    } finally {
      broken.merge = broken.snapshot = false
    }
  })

  it('serves a fresh peer the whole document when merging loses data', async () => {
    const log = captureLog('error')
    const doc = await StoredDocument.load(new MemoryStore(), id, { logger: log.logger })
    for (const update of appends(10)) await write(doc, update)
    broken.merge = true
    let served: Uint8Array
    try {
      served = doc.missingFor(new Uint8Array([0]))
    } finally {
      broken.merge = false
    }
    const fresh = new Y.Doc()
    Y.applyUpdate(fresh, served)
    expect(fresh.getArray('a').length).toBe(10)
    expect(log.entries.map(entry => entry.msg)).toEqual(['merging the stored updates lost data; encoding them from a Y.Doc instead'])
  })

  it('keeps the log when a garbage-collected snapshot lacks what was stored', async () => {
    const store = new MemoryStore()
    const log = captureLog('error')
    const doc = await StoredDocument.load(store, id, { compactMinBytes: 256, logger: log.logger })
    const source = new Y.Doc()
    source.getText('t').insert(0, 'hello')
    source.getText('t').delete(0, 1)
    await write(doc, Y.encodeStateAsUpdate(source))
    broken.snapshot = true
    try {
      for (const update of appends(40, source)) await write(doc, update)
    } finally {
      broken.snapshot = false
    }
    expect(log.entries[0]).toMatchObject({ msg: expect.stringMatching(/^compaction failed/), err: { message: 'the result holds other structs than the stored updates' } })
    expect((await store.load(id))!.snapshot).toBeNull()
    // Once Yjs behaves again, compaction succeeds.
    for (const update of appends(200, source)) await write(doc, update)
    expect((await store.load(id))!.snapshot).not.toBeNull()
  })
})
