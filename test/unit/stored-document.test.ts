/**
 * The relay's log-structured documents: id ranges, duplicate detection, sync from stored
 * bytes, compaction, and presence expiry, over a real store.
 */
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { parseDocId } from '../../shared/wire/doc-id.js'
import { MemoryStore } from '../../shared/storage/memory-store.js'
import { inspectUpdate } from '../../shared/validation/update-shape.js'
import { IdRanges } from '../../shared/validation/id-ranges.js'
import { AWARENESS_TIMEOUT_MS, RelayAwareness } from '../../server/documents/relay-awareness.js'
import { StoredDocument } from '../../server/documents/stored-document.js'
import { decodeAwarenessUpdate } from '../../shared/wire/awareness.js'
import { craftUpdate } from '../helpers/crafted-updates.js'
import { updatesOf } from '../helpers/updates-of.js'
import { prng, testSeed } from '../helpers/prng.js'
import type { SyncSession } from '../../shared/sync/session.js'

const id = parseDocId('doc')

async function store (doc: StoredDocument, update: Uint8Array): Promise<boolean> {
  const prepared = doc.checks.prepare(update)
  if (prepared === null) return false
  await doc.append(prepared)
  return true
}

const textOf = (update: Uint8Array): string => {
  const doc = new Y.Doc()
  Y.applyUpdate(doc, update)
  return doc.getText('t').toString()
}

describe('IdRanges', () => {
  it('agrees with a plain set of ids under random additions', () => {
    const seed = testSeed()
    const random = prng(seed)
    const ranges = new IdRanges()
    const naive = new Map<number, Set<number>>()
    for (let step = 0; step < 2000; step++) {
      const client = random.int(3)
      const clock = random.int(200)
      const length = 1 + random.int(8)
      if (random.next() < 0.5) {
        ranges.add(client, clock, length)
        const ids = naive.get(client) ?? new Set()
        for (let c = clock; c < clock + length; c++) ids.add(c)
        naive.set(client, ids)
      } else {
        const ids = naive.get(client) ?? new Set()
        const expected = Array.from({ length }, (_, i) => ids.has(clock + i)).every(Boolean)
        expect(ranges.covers(client, clock, length), `seed ${seed}, step ${step}`).toBe(expected)
      }
    }
    for (const [client, ids] of naive) {
      let end = 0
      while (ids.has(end)) end++
      expect(ranges.contiguousEnd(client), `seed ${seed}`).toBe(end)
    }
  })

  it('moves a client between the single-range form and the general one as gaps open and close', () => {
    const ranges = new IdRanges()
    ranges.add(7, 0, 3)
    ranges.add(7, 3, 2)
    expect([ranges.clientCount, ranges.hasGaps(), ranges.contiguousEnd(7)]).toEqual([1, false, 5])
    ranges.add(7, 9, 1)
    expect([ranges.hasGaps(), ranges.covers(7, 9, 1), ranges.covers(7, 4, 2)]).toEqual([true, true, false])
    ranges.add(7, 5, 4)
    expect([ranges.clientCount, ranges.hasGaps(), ranges.contiguousEnd(7)]).toEqual([1, false, 10])
    ranges.add(8, 4, 1)
    expect([ranges.has(8), ranges.contiguousEnd(8), ranges.stateVector()]).toEqual([true, 0, new Map([[7, 10]])])
    const copy = new IdRanges()
    ranges.forEachRange((client, start, end) => copy.add(client, start, end - start))
    expect(copy.equals(ranges)).toBe(true)
    copy.add(8, 0, 1)
    expect([copy.includes(ranges), ranges.includes(copy), copy.equals(ranges)]).toEqual([true, false, false])
  })

  it('knows when a client has a gap', () => {
    const ranges = new IdRanges()
    ranges.add(1, 0, 5)
    expect(ranges.hasGaps()).toBe(false)
    ranges.add(1, 7, 2)
    expect(ranges.hasGaps()).toBe(true)
    ranges.add(1, 5, 2)
    expect(ranges.hasGaps()).toBe(false)
    expect(ranges.stateVector()).toEqual(new Map([[1, 9]]))
  })
})

describe('StoredDocument', () => {
  it('stores a new update once and drops it when it comes again, structs or deletions', async () => {
    const memory = new MemoryStore()
    const doc = await StoredDocument.load(memory, id)
    const source = new Y.Doc()
    const [insert] = updatesOf(source, () => source.getText('t').insert(0, 'hello'))
    const [deletion] = updatesOf(source, () => source.getText('t').delete(0, 1))
    expect(await store(doc, insert!)).toBe(true)
    expect(await store(doc, insert!)).toBe(false)
    expect(await store(doc, deletion!)).toBe(true)
    expect(await store(doc, deletion!)).toBe(false)
    expect((await memory.load(id))!.updates).toHaveLength(2)
  })

  it('serves a fresh peer the stored bytes, and others only what they lack', async () => {
    const memory = new MemoryStore()
    const source = new Y.Doc()
    source.getText('t').insert(0, 'stored')
    await memory.compact(id, Y.encodeStateAsUpdate(source))
    const doc = await StoredDocument.load(memory, id)
    expect(doc.missingFor(new Uint8Array([0]))).toBe((await memory.load(id))!.snapshot)
    const peer = new Y.Doc()
    Y.applyUpdate(peer, doc.missingFor(Y.encodeStateVector(peer)))
    const [more] = updatesOf(source, () => source.getText('t').insert(6, '!'))
    await store(doc, more!)
    const missing = doc.missingFor(Y.encodeStateVector(peer))
    expect(missing.length).toBeLessThan(more!.length + 8)
    Y.applyUpdate(peer, missing)
    expect(peer.getText('t').toString()).toBe('stored!')
    expect(Y.encodeStateVector(peer)).toEqual(doc.stateVector())
  })

  it('answers peers that are up to date with one shared answer until the next write, waiting structs included', async () => {
    const doc = await StoredDocument.load(new MemoryStore(), id)
    const source = new Y.Doc()
    const [a, b, c] = updatesOf(source, () => { for (const char of 'abc') source.getText('t').insert(source.getText('t').length, char) })
    const [deletion] = updatesOf(source, () => source.getText('t').delete(0, 1))
    for (const update of [a!, c!, deletion!]) await store(doc, update)
    const peer = new Y.Doc()
    Y.applyUpdate(peer, a!)
    const answer = doc.missingFor(Y.encodeStateVector(peer))
    expect(doc.missingFor(Y.encodeStateVector(peer))).toBe(answer)
    Y.applyUpdate(peer, answer)
    Y.applyUpdate(peer, b!)
    expect(peer.getText('t').toString()).toBe('bc')
    await store(doc, b!)
    expect(doc.missingFor(Y.encodeStateVector(peer))).not.toBe(answer)
  })

  it('learns the deletions of a loaded snapshot when a peer sends them again', async () => {
    const memory = new MemoryStore()
    const source = new Y.Doc()
    source.getText('t').insert(0, 'abc')
    source.getText('t').delete(0, 1)
    await memory.compact(id, Y.encodeStateAsUpdate(source))
    const doc = await StoredDocument.load(memory, id)
    // A client's sync step 2 carries its whole delete set: nothing new here.
    expect(await store(doc, Y.encodeStateAsUpdate(source, Y.encodeStateVector(source)))).toBe(false)
    expect((await memory.load(id))!.updates).toHaveLength(0)
  })

  it('counts updates that wait for a missing dependency until the gap closes', async () => {
    const doc = await StoredDocument.load(new MemoryStore(), id)
    const source = new Y.Doc()
    const [a, b] = updatesOf(source, () => { source.getText('t').insert(0, 'a'); source.getText('t').insert(1, 'b') })
    await store(doc, b!)
    expect(doc.checks.waitingBytes).toBe(b!.length)
    await store(doc, a!)
    expect(doc.checks.waitingBytes).toBe(0)
    expect(textOf(doc.missingFor(new Uint8Array([0])))).toBe('ab')
  })

  it('counts updates that wait for another client\'s ids, or delete ids it lacks, until those arrive', async () => {
    const doc = await StoredDocument.load(new MemoryStore(), id)
    const after = craftUpdate([{ client: 2, clock: 0, structs: [{ origin: [1, 0], text: 'b' }] }])
    const deletion = craftUpdate([], [[1, [[0, 1]]]])
    expect(doc.checks.waits(inspectUpdate(after))).toBe(true)
    await store(doc, after)
    await store(doc, deletion)
    expect(doc.checks.waitingBytes).toBe(after.length + deletion.length)
    const missing = craftUpdate([{ client: 1, clock: 0, structs: [{ parent: 't', text: 'a' }] }])
    expect(doc.checks.waits(inspectUpdate(missing))).toBe(false)
    await store(doc, missing)
    expect(doc.checks.waitingBytes).toBe(0)
    expect(textOf(doc.missingFor(new Uint8Array([0])))).toBe('b')
  })

  it('does not count again what waits already when a peer re-sends it along with new work, as Yjs peers do', async () => {
    const doc = await StoredDocument.load(new MemoryStore(), id)
    const waiting = craftUpdate([{ client: 2, clock: 0, structs: [{ origin: [1, 0], text: 'w' }] }])
    await store(doc, waiting)
    expect(doc.checks.waitingBytes).toBe(waiting.length)
    // A peer holding the waiting item as pending sends it with every state it encodes.
    for (let i = 0; i < 3; i++) {
      const resent = Y.mergeUpdates([waiting, craftUpdate([{ client: 10 + i, clock: 0, structs: [{ parent: 't', text: `${i}` }] }])])
      expect(doc.checks.waits(inspectUpdate(resent))).toBe(false)
      await store(doc, resent)
    }
    expect(doc.checks.waitingBytes).toBe(waiting.length)
    // New work that waits still counts.
    const more = craftUpdate([{ client: 3, clock: 0, structs: [{ origin: [1, 0], text: 'v' }] }])
    expect(doc.checks.waits(inspectUpdate(Y.mergeUpdates([waiting, more])))).toBe(true)
  })

  it('normalises stored updates whose sections are in ascending client order, and refuses stored data Yjs mishandles (DocLoadError)', async () => {
    const memory = new MemoryStore()
    const ascending = craftUpdate([1, 2].map(client => ({ client, clock: 0, structs: [{ parent: 't', text: 'x' }] })))
    await memory.append(id, ascending)
    await memory.append(id, Y.encodeStateAsUpdate(new Y.Doc()))
    expect(textOf((await StoredDocument.load(memory, id)).missingFor(new Uint8Array([0])))).toBe('xx')
    await memory.append(id, craftUpdate([{ client: 3, clock: 0, structs: [{ origin: [3, 0], text: 'x' }] }]))
    await expect(StoredDocument.load(memory, id)).rejects.toThrow(/stored data of document doc is invalid: .*own or a later id/)
  })

  it('takes an update that fills a gap even when updates waiting for it are over the limit', async () => {
    const doc = await StoredDocument.load(new MemoryStore(), id)
    const source = new Y.Doc()
    const [a, b, c] = updatesOf(source, () => { for (const char of 'abc') source.getText('t').insert(source.getText('t').length, char) })
    await store(doc, c!)
    expect(doc.checks.waits(inspectUpdate(b!))).toBe(true)
    await store(doc, b!)
    expect(doc.checks.waits(inspectUpdate(a!))).toBe(false)
    await store(doc, a!)
    expect(doc.checks.waitingBytes).toBe(0)
    expect(textOf(doc.missingFor(new Uint8Array([0])))).toBe('abc')
  })

  it('compacts into a garbage-collected snapshot holding everything, updates still waiting included', async () => {
    const memory = new MemoryStore()
    const doc = await StoredDocument.load(memory, id, { compactMinBytes: 512 })
    const source = new Y.Doc()
    const text = source.getText('t')
    const updates = updatesOf(source, () => {
      for (let i = 0; i < 400; i++) text.insert(text.length, 'x'.repeat(10))
      text.delete(0, 3000)
    })
    const [waiting] = updatesOf(source, () => text.insert(0, 'late'))
    await store(doc, waiting!)
    expect(doc.checks.waitingBytes).toBeGreaterThan(0)
    for (const update of updates) await store(doc, update)
    // Write on until a compaction follows the deletion.
    const before = (await memory.load(id))!.snapshot
    while ((await memory.load(id))!.snapshot === before) {
      for (const update of updatesOf(source, () => text.insert(text.length, 'y'.repeat(20)))) await store(doc, update)
    }
    // The deleted text is gone from the snapshot.
    expect((await memory.load(id))!.snapshot!.length).toBeLessThan(3000)
    const reloaded = await StoredDocument.load(memory, id)
    expect(textOf(reloaded.missingFor(new Uint8Array([0])))).toBe(text.toString())
  })
})

describe('StoredDocument once quiet', () => {
  it('merges its parts and drops its item index and ids, then validates and serves as before', async () => {
    const memory = new MemoryStore()
    const doc = await StoredDocument.load(memory, id)
    const source = new Y.Doc()
    source.clientID = 50
    const updates = [
      ...updatesOf(source, () => source.getText('a').insert(0, 'aaaa')),
      ...updatesOf(source, () => source.getText('b').insert(0, 'bbbb')),
      // Inserted at the front: it has a right origin, so its check builds the item index.
      ...updatesOf(source, () => source.getText('a').insert(0, 'x'))
    ]
    for (const update of updates) await store(doc, update)
    const parts = (): unknown[] => (doc as unknown as { parts: unknown[] }).parts
    const index = (): unknown => (doc.checks as unknown as { index: unknown }).index
    expect(parts()).toHaveLength(3)
    expect(index()).not.toBeNull()
    const stateVector = doc.stateVector()
    doc.shed()
    expect(parts()).toHaveLength(1)
    expect(index()).toBeNull()
    expect((doc.checks as unknown as { heldStructs: unknown }).heldStructs).toBeNull()
    // The ids, read back from the merged part: what the document has is still known.
    expect(doc.checks.prepare(updates[1]!)).toBeNull()
    expect(doc.stateVector()).toEqual(stateVector)
    const served = new Y.Doc()
    Y.applyUpdate(served, doc.missingFor(new Uint8Array([0])))
    expect([served.getText('a').toString(), served.getText('b').toString()]).toEqual(['xaaaa', 'bbbb'])
    // The index, rebuilt from the merged part, still refuses an item between two lists.
    expect(() => doc.checks.prepare(craftUpdate([{ client: 70, clock: 0, structs: [{ origin: [50, 1], right: [50, 5], text: 'Q' }] }]))).toThrow(/different lists/)
    expect(index()).not.toBeNull()
    const [more] = updatesOf(source, () => source.getText('b').insert(0, 'y'))
    expect(await store(doc, more!)).toBe(true)
    expect(Y.encodeStateVector(source)).toEqual(doc.stateVector())
  })
})

describe('StoredDocument compaction without deletions', () => {
  it('compacts an append-only document by merging, and reloads the same state', async () => {
    const memory = new MemoryStore()
    const doc = await StoredDocument.load(memory, id, { compactMinBytes: 512 })
    const source = new Y.Doc()
    for (const update of updatesOf(source, () => { for (let i = 0; i < 300; i++) source.getArray('a').push([i]) })) await store(doc, update)
    const stored = (await memory.load(id))!
    expect(stored.snapshot).not.toBeNull()
    const reloaded = new Y.Doc()
    Y.applyUpdate(reloaded, (await StoredDocument.load(memory, id)).missingFor(new Uint8Array([0])))
    expect(reloaded.getArray('a').toArray()).toEqual(source.getArray('a').toArray())
  })
})

describe('RelayAwareness', () => {
  const entry = (clientId: number, clock: number, state: unknown): { clientId: number, clock: number, state: unknown } => ({ clientId, clock, state })

  it('keeps the state with the highest clock, removes with null, and tracks owners', () => {
    const awareness = new RelayAwareness(() => {})
    const owner = {} as SyncSession
    expect(awareness.apply([entry(1, 1, { a: 1 })], owner)).toHaveLength(1)
    expect(awareness.apply([entry(1, 1, { a: 2 })], owner)).toHaveLength(0)
    expect(awareness.apply([entry(1, 2, { a: 3 })], owner)).toHaveLength(1)
    expect(awareness.ownerOf(1)).toBe(owner)
    expect(awareness.removeOwnedBy(owner)).toEqual([entry(1, 2, null)])
    expect(awareness.encodeAll()).toBeNull()
    awareness.destroy()
  })

  it('expires states that were not renewed in time', () => {
    const expired: Uint8Array[] = []
    const awareness = new RelayAwareness(update => expired.push(update))
    awareness.apply([entry(7, 1, { cursor: 3 })], {} as SyncSession)
    awareness.expire(Date.now())
    expect(expired).toHaveLength(0)
    awareness.expire(Date.now() + AWARENESS_TIMEOUT_MS)
    expect(expired.map(decodeAwarenessUpdate)).toEqual([[entry(7, 1, null)]])
    expect(awareness.size).toBe(0)
    awareness.destroy()
  })
})
