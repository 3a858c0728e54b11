/**
 * A document's checks on their own, as a relay's stored document and a replica both use
 * them: loaded from the parts a document starts from, then preparing and recording
 * updates from others, and recording the document's own changes.
 */
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { parseDocId } from '../../shared/wire/doc-id.js'
import { LimitError, ProtocolError } from '../../shared/errors.js'
import { DocumentChecks, type DocumentChecksOptions } from '../../shared/validation/document-checks.js'
import { TooManyClientsError } from '../../shared/validation/update-shape.js'
import { craftUpdate } from '../helpers/crafted-updates.js'
import { updatesOf } from '../helpers/updates-of.js'

const docId = parseDocId('doc')

/** A document of client 50: text 'a' (ids 0-3), text 'b' (4-7). */
function base (): Uint8Array {
  const doc = new Y.Doc()
  doc.clientID = 50
  doc.getText('a').insert(0, 'aaaa')
  doc.getText('b').insert(0, 'bbbb')
  return Y.encodeStateAsUpdate(doc)
}

/** Checks of a document made of `parts` (loaded, as a stored document loads its own), which it keeps on record. */
function checksOf (parts: Uint8Array[], options: Partial<DocumentChecksOptions> = {}): { checks: DocumentChecks, parts: Uint8Array[] } {
  const held: Uint8Array[] = []
  const checks = new DocumentChecks(() => held, { docId, ...options })
  for (const part of parts) held.push(checks.loadPart(part).bytes)
  return { checks, parts: held }
}

/** Prepares `update` and, if it holds something new, records it; returns whether it did. */
function take (checks: DocumentChecks, update: Uint8Array): boolean {
  const prepared = checks.prepare(update)
  if (prepared === null) return false
  checks.record(prepared)
  return true
}

const thrown = (run: () => unknown): unknown => {
  try {
    run()
  } catch (error) {
    return error
  }
  throw new Error('nothing was thrown')
}

describe('DocumentChecks', () => {
  it('is built from a document\'s parts: knows what they hold, keeps them normalised, and refuses parts Yjs mishandles', () => {
    const ascending = craftUpdate([1, 2].map(client => ({ client, clock: 0, structs: [{ parent: 't', text: 'x' }] })))
    const { checks, parts } = checksOf([base(), ascending])
    expect(parts[1]).not.toEqual(ascending)
    const loaded = new Y.Doc()
    for (const part of parts) Y.applyUpdate(loaded, part)
    expect(loaded.getText('t').toString()).toBe('xx')
    expect(checks.stateVector()).toEqual(new Map([[50, 8], [1, 1], [2, 1]]))
    expect(checks.prepare(base())).toBeNull()
    expect(() => checksOf([craftUpdate([{ client: 3, clock: 0, structs: [{ origin: [3, 0], text: 'x' }] }])])).toThrow(ProtocolError)
    // More clients than allowed, in one part or across parts.
    expect(() => checksOf([ascending], { maxClients: 1 })).toThrow(TooManyClientsError)
    expect(() => checksOf([base(), ascending], { maxClients: 2 })).toThrow(TooManyClientsError)
  })

  it('refuses an item whose origin and right origin are in different lists', () => {
    const { checks } = checksOf([base()])
    expect(() => checks.prepare(craftUpdate([{ client: 70, clock: 0, structs: [{ origin: [50, 1], right: [50, 5], text: 'Q' }] }]))).toThrow(/item 70:0 has its origin and right origin in different lists/)
    expect(take(checks, craftUpdate([{ client: 70, clock: 0, structs: [{ origin: [50, 1], right: [50, 2], text: 'Q' }] }]))).toBe(true)
    // What was recorded is in the index: an item after it must stay in text 'a'.
    expect(() => checks.prepare(craftUpdate([{ client: 71, clock: 0, structs: [{ origin: [70, 0], right: [50, 6], text: 'R' }] }]))).toThrow(/different lists/)
  })

  it('counts the distinct clients of structs and deletions against maxClients (1008, naming the document)', () => {
    const { checks } = checksOf([base()], { maxClients: 3 })
    expect(take(checks, craftUpdate([{ client: 60, clock: 0, structs: [{ parent: 't', text: 'x' }] }]))).toBe(true)
    // A deletion of ids of a client the document does not know counts too.
    const deletion = craftUpdate([], [[61, [[0, 1]]]])
    const refusal = thrown(() => checks.prepare(craftUpdate([{ client: 62, clock: 0, structs: [{ parent: 't', text: 'y' }] }], [[61, [[0, 1]]]])))
    expect(refusal).toBeInstanceOf(LimitError)
    expect(refusal).toMatchObject({ code: 1008, message: 'document doc would have more than 3 clients' })
    expect(take(checks, deletion)).toBe(true)
    // Known clients still write; an update naming too many clients by itself is refused as a limit too.
    expect(take(checks, craftUpdate([{ client: 60, clock: 1, structs: [{ origin: [60, 0], text: 'z' }] }]))).toBe(true)
    const crowded = craftUpdate([80, 81, 82, 83].map(client => ({ client, clock: 0, structs: [{ parent: 't', text: 'c' }] })))
    expect(thrown(() => checks.prepare(crowded))).toMatchObject({ name: 'LimitError', code: 1008, message: 'document doc would have more than 3 clients' })
  })

  it('counts the bytes of updates that wait for missing dependencies, and refuses more that would wait once over maxWaitingBytes', () => {
    const { checks } = checksOf([base()], { maxWaitingBytes: 5 })
    const source = new Y.Doc()
    source.clientID = 90
    const [first, second, third] = updatesOf(source, () => { for (const char of 'xyz') source.getText('a').insert(source.getText('a').length, char) })
    // The third waits for the second, a gap in client 90's clocks.
    const waiting = checks.prepare(third!)!
    expect(waiting.waits).toBe(true)
    checks.checkWaiting(waiting.waits)
    checks.record(waiting)
    expect(checks.waitingBytes).toBe(third!.length)
    expect(third!.length).toBeGreaterThan(5)
    // More that would wait is refused; the update that fills the gap is not.
    const more = checks.prepare(craftUpdate([{ client: 91, clock: 0, structs: [{ origin: [92, 0], text: 'w' }] }]))!
    expect(more.waits).toBe(true)
    expect(thrown(() => checks.checkWaiting(more.waits))).toMatchObject({ name: 'LimitError', code: 1008, message: 'more than 5 bytes of updates wait for missing dependencies' })
    const gapFiller = checks.prepare(first!)!
    expect(gapFiller.waits).toBe(false)
    checks.checkWaiting(gapFiller.waits)
    checks.record(gapFiller)
    expect(checks.waitingBytes).toBe(third!.length)
    expect(take(checks, second!)).toBe(true)
    expect(checks.waitingBytes).toBe(0)
    expect(checks.stateVector().get(90)).toBe(3)
  })

  it('records the document\'s own changes unchecked, then checks a peer\'s update that builds on them', () => {
    const replica = new Y.Doc()
    replica.clientID = 1
    Y.applyUpdate(replica, base())
    const checks = new DocumentChecks(() => [Y.encodeStateAsUpdate(replica)], { docId, maxClients: 3 })
    checks.loadPart(base())
    // A peer's insertion at the front of text 'a' has a right origin: the item index is built.
    const peer = new Y.Doc()
    peer.clientID = 2
    Y.applyUpdate(peer, base())
    const [front] = updatesOf(peer, () => peer.getText('a').insert(0, 'p'))
    expect(checks.prepare(front!)!.lists).not.toBeNull()
    take(checks, front!)
    Y.applyUpdate(replica, front!)
    // The replica's own change, after the index was built.
    const [own] = updatesOf(replica, () => replica.getText('b').insert(4, 'o'))
    checks.recordOwn(own!)
    expect(checks.prepare(own!)).toBeNull()
    expect(checks.stateVector().get(1)).toBe(1)
    // A peer's item after it, with its right origin in text 'a', is refused: the index knows the own change's list.
    expect(() => checks.prepare(craftUpdate([{ client: 2, clock: 1, structs: [{ origin: [1, 0], right: [50, 2], text: 'X' }] }]))).toThrow(/different lists/)
    // An honest edit after it is taken, and waits for nothing.
    Y.applyUpdate(peer, own!)
    const [after] = updatesOf(peer, () => peer.getText('b').insert(5, 'q'))
    const prepared = checks.prepare(after!)!
    expect(prepared.waits).toBe(false)
    checks.record(prepared)
    // Own changes count as clients too: a fourth client is one too many.
    expect(() => checks.prepare(craftUpdate([{ client: 4, clock: 0, structs: [{ parent: 't', text: 'n' }] }]))).toThrow(LimitError)
  })

  it('returns null for an update with nothing new, structs or deletions', () => {
    const { checks } = checksOf([base()])
    const source = new Y.Doc()
    Y.applyUpdate(source, base())
    const [deletion] = updatesOf(source, () => source.getText('a').delete(0, 2))
    expect(take(checks, deletion!)).toBe(true)
    expect(checks.prepare(deletion!)).toBeNull()
    expect(checks.prepare(craftUpdate([], [[50, [[1, 1]]]]))).toBeNull()
    // Its whole state, as a peer's sync step 2 carries it.
    expect(checks.prepare(Y.encodeStateAsUpdate(source))).toBeNull()
    expect(checks.prepare(craftUpdate([], [[50, [[1, 2]]]]))).not.toBeNull()
  })

  it('lets go of its ids and index once settled, and reads them again from the one part when needed', () => {
    const parts = [base()]
    let rebuilt = 0
    const checks = new DocumentChecks(() => parts, { docId, onRebuilt: () => rebuilt++ })
    checks.loadPart(parts[0]!)
    const stateVector = checks.stateVector()
    checks.shed()
    expect((checks as unknown as { heldStructs: unknown }).heldStructs).toBeNull()
    expect(checks.prepare(base())).toBeNull()
    expect(rebuilt).toBe(1)
    expect(checks.stateVector()).toEqual(stateVector)
    expect(() => checks.prepare(craftUpdate([{ client: 70, clock: 0, structs: [{ origin: [50, 1], right: [50, 5], text: 'Q' }] }]))).toThrow(/different lists/)
    expect(rebuilt).toBe(2)
    // Something waiting keeps the ids.
    const waiting = craftUpdate([{ client: 71, clock: 0, structs: [{ origin: [72, 0], text: 'w' }] }])
    expect(take(checks, waiting)).toBe(true)
    parts.splice(0, 1, Y.mergeUpdates([parts[0]!, waiting]))
    checks.shed()
    expect((checks as unknown as { heldStructs: unknown }).heldStructs).not.toBeNull()
  })
})
