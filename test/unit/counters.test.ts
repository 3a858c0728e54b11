/**
 * The durability counters a replica keeps in a document's store metadata: they survive a
 * round trip, and metadata that does not decode refuses the document instead of counting
 * nothing as pending.
 */
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { Replica } from '../../client/replica.js'
import { decodeCounters, updateCounters } from '../../client/counters.js'
import { DocLoadError } from '../../shared/errors.js'
import { MemoryStore } from '../../shared/storage/memory-store.js'
import { parseDocId } from '../../shared/wire/doc-id.js'

describe('durability counters', () => {
  it('decode what they encode, and drop writers with nothing pending', () => {
    const meta = updateCounters('a', { local: 5, durable: 2 }, new Map(), false)(null)
    const both = updateCounters('b', { local: 1, durable: 1 }, new Map(), false)(meta)
    expect(decodeCounters(both)).toEqual(new Map([['a', { local: 5, durable: 2 }]]))
    expect(decodeCounters(null)).toEqual(new Map())
  })

  it('refuse metadata that is not counters of this format, whole and nothing else', () => {
    const valid = updateCounters('a', { local: 5, durable: 2 }, new Map(), false)(null)!
    // Two varuints: what a single-writer format would have been.
    for (const meta of [new Uint8Array([5, 2]), valid.subarray(0, valid.length - 1), new Uint8Array([...valid, 0]), new Uint8Array([0, 9, 0])]) {
      expect(() => decodeCounters(meta)).toThrow(DocLoadError)
    }
  })

  it('do not open a document whose counters do not decode, and leave what is stored as it is', async () => {
    const store = new MemoryStore()
    const docId = parseDocId('counters/unreadable')
    const source = new Y.Doc()
    source.getText('t').insert(0, 'kept')
    await store.append(docId, Y.encodeStateAsUpdate(source))
    await store.updateMeta(docId, () => new Uint8Array([5, 2]))
    const replica = new Replica({ store })
    const handle = replica.doc(docId)
    await expect(handle.whenLoaded()).rejects.toThrow(/counters\/unreadable.*acknowledgement counters do not decode/)
    await expect(handle.whenLoaded()).rejects.toBeInstanceOf(DocLoadError)
    expect(handle.status).toBe('failed')
    expect((await store.load(docId))!.meta).toEqual(new Uint8Array([5, 2]))
    await replica.close()
  })
})
