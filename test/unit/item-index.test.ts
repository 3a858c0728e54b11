/**
 * The document half of update validation: items are checked against the lists of the
 * items they refer to, held by the document or brought by the same update, and items
 * waiting for ids the document lacks are checked once those are known.
 */
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { ItemIndex } from '../../shared/validation/item-index.js'
import { inspectUpdate } from '../../shared/validation/update-shape.js'
import { craftUpdate, type CraftedSection, type CraftedDeletions } from '../helpers/crafted-updates.js'

/** A document of client 50: text 'a' (ids 0-3), text 'b' (4-7), a map 'm' holding an array at 'k' (8) with two numbers (9-10). */
function base (): Uint8Array {
  const doc = new Y.Doc()
  doc.clientID = 50
  doc.getText('a').insert(0, 'aaaa')
  doc.getText('b').insert(0, 'bbbb')
  doc.getMap('m').set('k', new Y.Array())
  ;(doc.getMap('m').get('k') as Y.Array<number>).insert(0, [1, 2])
  return Y.encodeStateAsUpdate(doc)
}

/** Checks `sections` against a document made of `stored`, and adds them if they pass; returns the refusal, if any. */
function check (index: ItemIndex, sections: CraftedSection[], deletions: CraftedDeletions = []): string {
  const shape = inspectUpdate(craftUpdate(sections, deletions))
  try {
    index.add(shape, index.check(shape))
    return 'accepted'
  } catch (error) {
    return (error as Error).message
  }
}

const indexOf = (...updates: Uint8Array[]): ItemIndex => ItemIndex.of(updates.map(update => inspectUpdate(update)))

describe('ItemIndex', () => {
  it('refuses an item whose origin and right origin are in different lists', () => {
    const index = indexOf(base())
    expect(check(index, [{ client: 70, clock: 0, structs: [{ origin: [50, 1], right: [50, 5], text: 'Q' }] }])).toMatch(/origin and right origin in different lists/)
    expect(check(index, [{ client: 70, clock: 0, structs: [{ origin: [50, 1], right: [50, 2], text: 'Q' }] }])).toBe('accepted')
    // An entry under a key of a type is in another list than the type's sequence.
    expect(check(index, [{ client: 71, clock: 0, structs: [{ parent: [50, 8], sub: 'k', text: 'x' }] }])).toBe('accepted')
    expect(check(index, [{ client: 72, clock: 0, structs: [{ origin: [50, 9], right: [71, 0], text: 'y' }] }])).toMatch(/different lists/)
  })

  it('follows lists through items of the same update, of any client, in any order', () => {
    const index = indexOf(base())
    // Client 80's item goes after client 60's, which the same update brings later (lower clients come last).
    const crossing: CraftedSection[] = [
      { client: 80, clock: 0, structs: [{ origin: [60, 0], right: [50, 6], text: 'z' }] },
      { client: 60, clock: 0, structs: [{ origin: [50, 0], text: 'w' }] }
    ]
    expect(check(index, crossing)).toMatch(/different lists/)
    expect(check(index, [
      { client: 80, clock: 0, structs: [{ origin: [60, 0], right: [50, 2], text: 'z' }] },
      { client: 60, clock: 0, structs: [{ origin: [50, 0], text: 'w' }] }
    ])).toBe('accepted')
  })

  it('refuses an item whose parent is an item that is not a type; a type, a collected type or a GC struct will do', () => {
    const index = indexOf(base())
    expect(check(index, [{ client: 60, clock: 0, structs: [{ parent: [50, 1], text: 'X' }] }])).toMatch(/parent of item 60:0 is not a type/)
    expect(check(index, [{ client: 61, clock: 0, structs: [{ parent: [50, 8], text: 'X' }] }])).toBe('accepted')
    // The parent is a type item of the same update.
    expect(check(index, [{ client: 62, clock: 0, structs: [{ parent: 'a', type: 1 }, { parent: [62, 0], sub: 'k', text: 'v' }] }])).toBe('accepted')
    // A deleted type, garbage-collected into deleted content, and a GC struct: what they were is gone; Yjs handles both alike everywhere.
    const collected = indexOf(craftUpdate([{ client: 90, clock: 0, structs: [{ parent: 'a', deleted: 1 }, { gc: 3 }] }]))
    expect(check(collected, [{ client: 63, clock: 0, structs: [{ parent: [90, 0], text: 'X' }] }])).toBe('accepted')
    expect(check(collected, [{ client: 64, clock: 0, structs: [{ parent: [90, 2], text: 'X' }] }])).toBe('accepted')
  })

  it('lets an item wait for an id the document lacks, then knows its list once that id arrives', () => {
    const index = indexOf(base())
    // 75:0 goes after 55:0, which nobody has yet: nothing to check about it.
    expect(check(index, [{ client: 75, clock: 0, structs: [{ origin: [55, 0], right: [50, 2], text: 'w' }] }])).toBe('accepted')
    expect(check(index, [{ client: 55, clock: 0, structs: [{ origin: [50, 1], text: 'v' }] }])).toBe('accepted')
    // Now 75:0 is known to be in text 'a'.
    expect(check(index, [{ client: 76, clock: 0, structs: [{ origin: [75, 0], right: [50, 5], text: 'u' }] }])).toMatch(/different lists/)
    expect(check(index, [{ client: 77, clock: 0, structs: [{ origin: [75, 0], right: [50, 3], text: 'u' }] }])).toBe('accepted')
  })

  it('learns nothing from an update it refuses', () => {
    const index = indexOf(base())
    expect(check(index, [{ client: 75, clock: 0, structs: [{ origin: [55, 0], text: 'w' }] }])).toBe('accepted')
    // This update would put 55:0, and so 75:0, into text 'b', but one of its items is refused.
    expect(check(index, [
      { client: 80, clock: 0, structs: [{ origin: [75, 0], right: [50, 5], text: 'v' }] },
      { client: 55, clock: 0, structs: [{ parent: 'b', text: 'u' }] },
      { client: 54, clock: 0, structs: [{ origin: [50, 1], right: [50, 5], text: 't' }] }
    ])).toMatch(/different lists/)
    expect(check(index, [{ client: 55, clock: 0, structs: [{ parent: 'a', text: 'u' }] }])).toBe('accepted')
    expect(check(index, [{ client: 81, clock: 0, structs: [{ origin: [75, 0], right: [50, 2], text: 's' }] }])).toBe('accepted')
  })

  it('refuses references that lead around in a circle', () => {
    const index = indexOf(base())
    expect(check(index, [
      { client: 82, clock: 0, structs: [{ origin: [81, 0], right: [50, 2], text: 'p' }] },
      { client: 81, clock: 0, structs: [{ origin: [82, 0], text: 'q' }] }
    ])).toMatch(/circle/)
  })

  it('refuses an update that continues held ids in another list, and takes an honest re-send', () => {
    const index = indexOf(craftUpdate([{ client: 40, clock: 0, structs: [{ parent: 'a', text: 'abcd' }] }]))
    expect(check(index, [{ client: 40, clock: 0, structs: [{ parent: 'b', text: 'abcdefgh' }] }])).toMatch(/continues held ids in another list/)
    expect(check(index, [{ client: 40, clock: 0, structs: [{ parent: 'a', text: 'abcdefgh' }] }])).toBe('accepted')
    expect(check(index, [{ client: 40, clock: 6, structs: [{ origin: [40, 5], text: 'ghij' }] }])).toBe('accepted')
  })

  it('is built from stored parts in any order, across clients', () => {
    const first = craftUpdate([{ client: 30, clock: 0, structs: [{ parent: 'b', text: 'xy' }] }])
    const second = craftUpdate([{ client: 31, clock: 0, structs: [{ origin: [30, 1], text: 'z' }] }])
    // The later part first: 31:0's list is known only once 30's part is read.
    const index = indexOf(second, first)
    expect(check(index, [{ client: 32, clock: 0, structs: [{ origin: [31, 0], right: [30, 0], text: 'w' }] }])).toBe('accepted')
    expect(check(index, [{ client: 33, clock: 0, structs: [{ parent: 'a', text: 'v' }, { origin: [33, 0], right: [31, 0], text: 'u' }] }])).toMatch(/different lists/)
  })
})
