/**
 * Transactions encoded as one update: one transaction gives exactly the bytes of Yjs's own
 * `update` event, and any run of transactions (text, formatting, maps, arrays, nested types,
 * content inserted and deleted in the same run) gives an update that brings another
 * document to the same state. Seeded; the seed is printed on failure.
 */
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { TransactionBatch } from '../../client/transaction-batch.js'
import { prng, testSeed } from '../helpers/prng.js'

type Random = ReturnType<typeof prng>

/** One random change to `doc` (some change nothing). */
function randomEdit (doc: Y.Doc, random: Random): void {
  const text = doc.getText('text')
  const map = doc.getMap<unknown>('map')
  const array = doc.getArray<unknown>('array')
  const pick = random.int(8)
  if (pick === 0 && text.length > 0) {
    const pos = random.int(text.length)
    text.delete(pos, Math.min(1 + random.int(5), text.length - pos))
  } else if (pick === 1 && text.length > 0) {
    text.format(random.int(text.length), 1 + random.int(3), { bold: random.next() < 0.5 ? true : null })
  } else if (pick === 2) {
    map.set(`k${random.int(5)}`, random.int(100))
  } else if (pick === 3) {
    map.delete(`k${random.int(5)}`)
  } else if (pick === 4) {
    const nested = new Y.Map<number>()
    array.insert(random.int(array.length + 1), [nested])
    nested.set('n', random.int(10))
  } else if (pick === 5 && array.length > 0) {
    array.delete(random.int(array.length), 1)
  } else if (pick === 6 && array.length > 0) {
    const nested = array.get(random.int(array.length))
    if (nested instanceof Y.Map) nested.set('n', random.int(10))
  } else {
    text.insert(random.int(text.length + 1), 'xyz'.slice(0, 1 + random.int(3)))
  }
}

const contentOf = (doc: Y.Doc): unknown => ({
  text: doc.getText('text').toDelta(),
  map: doc.getMap('map').toJSON(),
  array: doc.getArray('array').toJSON()
})

describe('transaction batch', () => {
  it.each([true, false])('encodes one transaction as Yjs does, and runs of them as one update (gc %s)', gc => {
    const seed = testSeed()
    try {
      const random = prng(seed)
      const doc = new Y.Doc({ gc })
      const copy = new Y.Doc({ gc })
      let batch = new TransactionBatch()
      let events = 0
      let single: Uint8Array | null = null
      doc.on('afterTransactionCleanup', (transaction: Y.Transaction) => {
        single = TransactionBatch.encode(transaction)
        batch.add(transaction)
      })
      doc.on('update', (update: Uint8Array) => {
        events++
        expect(single).toEqual(update)
      })
      let counted = 0
      for (let i = 0; i < 3000; i++) {
        single = null
        doc.transact(() => {
          for (let n = random.int(3); n >= 0; n--) randomEdit(doc, random)
        })
        if (random.next() < 0.1 || i === 2999) {
          counted += batch.count
          if (batch.count > 0) Y.applyUpdate(copy, batch.encode(doc))
          batch = new TransactionBatch()
        }
      }
      expect(counted).toBe(events)
      expect(contentOf(copy)).toEqual(contentOf(doc))
      expect(Y.encodeStateVector(copy)).toEqual(Y.encodeStateVector(doc))
      expect(Y.equalDeleteSets(Y.createDeleteSetFromStructStore(copy.store), Y.createDeleteSetFromStructStore(doc.store))).toBe(true)
    } catch (error) {
      console.error(`transaction batch test failed with SEED=${seed}`)
      throw error
    }
  })
})
