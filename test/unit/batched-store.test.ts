/**
 * Group commit in BatchedStore for a store that commits asynchronously: one batch in flight
 * at a time, what is written meanwhile goes in the next batch whole, writes settle with
 * their batch, and a reader waits for every write made before it.
 */
import { describe, expect, it } from 'vitest'
import { BatchedStore, type StoreWrite } from '../../shared/storage/batched-store.js'
import type { StoredDoc } from '../../shared/storage/store.js'
import { parseDocId, type DocId } from '../../shared/wire/doc-id.js'

/** A store whose commits wait until the test lets them finish. */
class GatedStore extends BatchedStore {
  readonly batches: StoreWrite[][] = []
  private gates: Array<() => void> = []

  protected commitBatch (writes: StoreWrite[]): Promise<void> {
    this.batches.push(writes)
    return new Promise(resolve => this.gates.push(resolve))
  }

  /** Lets the batch in flight finish. */
  finishOne (): void {
    this.gates.shift()!()
  }

  async load (_docId: DocId): Promise<StoredDoc | null> {
    await this.written()
    return null
  }

  async list (): Promise<DocId[]> {
    return []
  }

  protected release (): void {}
  protected get description (): string {
    return 'GatedStore'
  }
}

const turn = (): Promise<void> => new Promise(resolve => setImmediate(resolve))
const doc = parseDocId('doc')
const bytes = (n: number): Uint8Array => new Uint8Array([n])

describe('BatchedStore with an asynchronous commit', () => {
  it('keeps one batch in flight and puts what comes meanwhile in the next one', async () => {
    const store = new GatedStore()
    const settled: number[] = []
    const write = (n: number): Promise<void> => store.append(doc, bytes(n)).then(() => { settled.push(n) })
    const first = write(1)
    await turn()
    expect(store.batches).toHaveLength(1)
    const later = [write(2), write(3)]
    await turn()
    const more = write(4)
    await turn()
    expect(store.batches).toHaveLength(1) // 2, 3 and 4 wait for the batch in flight
    let loaded = false
    const load = store.load(doc).then(() => { loaded = true })
    store.finishOne()
    await first
    await turn()
    expect(settled).toEqual([1])
    expect(store.batches).toHaveLength(2)
    expect(store.batches[1]!.map(w => w.kind === 'append' && w.data[0])).toEqual([2, 3, 4])
    expect(loaded).toBe(false) // the read waits for the writes made before it
    store.finishOne()
    await Promise.all([...later, more, load])
    expect(settled).toEqual([1, 2, 3, 4])
    const closing = store.close()
    await closing
    await expect(store.append(doc, bytes(5))).rejects.toThrow(/closed/)
  })
})
