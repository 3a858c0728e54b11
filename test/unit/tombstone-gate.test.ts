/**
 * The tombstone gate of a cluster relay: nothing with another home is served before the
 * relay has heard another relay's tombstones; while it settles, every other home of a
 * document must have been heard; a relay cut off for long enough forgets whom it heard;
 * a load that cannot be served in time is refused with 4503; single-copy documents never wait.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { DocLoadError } from '../../shared/errors.js'
import { homesOf } from '../../shared/placement.js'
import { parseDocId } from '../../shared/wire/doc-id.js'
import { Cluster } from '../../server/cluster/cluster.js'
import { TombstoneGate } from '../../server/cluster/tombstone-gate.js'

const members = ['r1', 'r2', 'r3'].map(id => ({ id, url: `ws://${id}` }))
const timing = { waitMs: 500, graceMs: 200, cutOffMs: 300 }
const docId = parseDocId('gate/doc')

beforeEach(() => { vi.useFakeTimers() })
afterEach(() => { vi.useRealTimers() })

/** The gate of the relay that is a home of `docId` with R=2, and the id of the other home. */
function gateOfHome (): { gate: TombstoneGate, other: string, outsider: string } {
  const [first, second] = homesOf(docId, members, 2)
  const gate = new TombstoneGate(new Cluster({ selfId: first!.id, members, copies: 2 }), timing)
  return { gate, other: second!.id, outsider: members.find(m => m.id !== first!.id && m.id !== second!.id)!.id }
}

describe('the tombstone gate', () => {
  it('serves nothing that has another home until a relay was heard, and then, while settling, waits for the other homes', async () => {
    const { gate, other, outsider } = gateOfHome()
    expect(gate.ready(docId)).toBe(false)
    const ready = gate.whenReady(docId)
    let done = false
    void ready.then(() => { done = true })
    gate.linkUp(outsider)
    gate.exchanged(outsider)
    await vi.advanceTimersByTimeAsync(50)
    expect(done).toBe(false) // settling: the other home has not been heard yet
    gate.linkUp(other)
    await vi.advanceTimersByTimeAsync(50)
    expect(done).toBe(false) // its link is up, its tombstones not applied yet
    gate.exchanged(other)
    await vi.advanceTimersByTimeAsync(0)
    expect(done).toBe(true)
  })

  it('after settling, takes any relay heard as enough: a home that stays away is down', async () => {
    const { gate, outsider } = gateOfHome()
    gate.linkUp(outsider)
    gate.exchanged(outsider)
    expect(gate.ready(docId)).toBe(false)
    await vi.advanceTimersByTimeAsync(timing.graceMs)
    expect(gate.ready(docId)).toBe(true)
  })

  it('refuses with 4503 a load that cannot be served in time', async () => {
    const { gate } = gateOfHome()
    const refused = expect(gate.whenReady(docId)).rejects.toSatisfy(error => error instanceof DocLoadError && error.code === 4503)
    await vi.advanceTimersByTimeAsync(timing.waitMs)
    await refused
  })

  it('forgets whom it heard once no link has been up for the cut-off period, not before', async () => {
    const { gate, other, outsider } = gateOfHome()
    for (const id of [other, outsider]) {
      gate.linkUp(id)
      gate.exchanged(id)
    }
    gate.linkDown(other)
    gate.linkDown(outsider)
    await vi.advanceTimersByTimeAsync(timing.cutOffMs - 1)
    expect(gate.ready(docId)).toBe(true)
    await vi.advanceTimersByTimeAsync(1)
    expect(gate.ready(docId)).toBe(false)
    gate.linkUp(outsider)
    expect(gate.ready(docId)).toBe(false) // back, but not heard yet
    gate.exchanged(outsider)
    gate.linkUp(other)
    gate.exchanged(other)
    expect(gate.ready(docId)).toBe(true)
  })

  it('never holds back a document with a single copy', () => {
    const gate = new TombstoneGate(new Cluster({ selfId: homesOf(docId, members, 1)[0]!.id, members, copies: 1 }), timing)
    expect(gate.ready(docId)).toBe(true)
  })
})
