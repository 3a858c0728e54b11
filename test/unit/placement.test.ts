import { describe, expect, it } from 'vitest'
import { hash53 } from '../../shared/hash.js'
import { preferenceList, homesOf } from '../../shared/placement.js'

const members = (n: number): Array<{ id: string }> => Array.from({ length: n }, (_, i) => ({ id: `r${i + 1}` }))
const docs = Array.from({ length: 3000 }, (_, i) => `doc/${i}`)

describe('rendezvous placement', () => {
  it('is deterministic and independent of member order', () => {
    const list = preferenceList('notes/1', members(5)).map(m => m.id)
    expect(preferenceList('notes/1', [...members(5)].reverse()).map(m => m.id)).toEqual(list)
    expect(new Set(list).size).toBe(5)
    expect(hash53('abc')).toBe(hash53('abc'))
  })

  it('keeps its hash and its lists: a change would move stored documents', () => {
    expect(hash53('abc')).toBe(5059922895146125)
    expect(hash53('')).toBe(3338908027751811)
    expect(hash53('r1\u0000notes/1')).toBe(7682550139082154)
    expect(hash53('abc', 7)).toBe(4176743716076507)
    expect(preferenceList('notes/1', members(5)).map(m => m.id)).toEqual(['r1', 'r5', 'r4', 'r2', 'r3'])
  })

  it('spreads documents evenly over relays', () => {
    const counts = new Map<string, number>()
    for (const doc of docs) for (const m of homesOf(doc, members(5), 3)) counts.set(m.id, (counts.get(m.id) ?? 0) + 1)
    const expected = docs.length * 3 / 5
    for (const count of counts.values()) expect(Math.abs(count - expected) / expected).toBeLessThan(0.1)
  })

  it('moves only the documents whose replicas change when a relay joins', () => {
    let moved = 0
    for (const doc of docs) {
      const before = homesOf(doc, members(3), 3).map(m => m.id)
      const after = homesOf(doc, members(4), 3).map(m => m.id)
      const lost = before.filter(id => !after.includes(id))
      // A joining relay can only displace one replica, and only in favour of itself.
      expect(lost.length).toBeLessThanOrEqual(1)
      if (lost.length === 1) {
        expect(after).toContain('r4')
        moved++
      }
    }
    expect(moved / docs.length).toBeGreaterThan(0.6)
    expect(moved / docs.length).toBeLessThan(0.9)
  })

  it('caps the replica count at the cluster size', () => {
    expect(homesOf('x', members(2), 3)).toHaveLength(2)
  })
})
