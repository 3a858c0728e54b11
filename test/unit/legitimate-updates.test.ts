/**
 * Property test: whatever real Y.Docs emit passes the relay's validation, in any order,
 * as single updates, merged updates, diffs against any state vector and garbage-collected
 * snapshots; and what a relay document stored compacts and loads into the same state.
 * Several seeded Y.Docs edit text (with formatting and embeds), arrays, maps, nested
 * types, XML and subdocuments, undo and redo, and sync with each other partially and out
 * of order.
 */
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { parseDocId } from '../../shared/wire/doc-id.js'
import { MemoryStore } from '../../shared/storage/memory-store.js'
import { inspectUpdate } from '../../shared/validation/update-shape.js'
import { StoredDocument } from '../../server/documents/stored-document.js'
import { captureLog } from '../helpers/log-capture.js'
import { prng, testSeed } from '../helpers/prng.js'

type Random = ReturnType<typeof prng>
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyType = Y.AbstractType<any>
const id = parseDocId('property')

const pick = <T>(random: Random, items: T[]): T => items[random.int(items.length)]!
// No astral characters: a random UTF-16 index could split a surrogate pair, which Yjs turns into
// U+FFFD only on the replicas that split the item (whatever the relay does).
const word = (random: Random): string => pick(random, ['a', 'bc', 'déf', '€x', 'ghij', ' ', '\n'])
/** A random [index, count] range within a list of `length` > 0. */
const span = (random: Random, length: number, most: number): [number, number] => {
  const index = random.int(length)
  return [index, 1 + random.int(Math.min(most, length - index))]
}

/** Every type reachable in `doc`, root types first. */
function typesOf (doc: Y.Doc): AnyType[] {
  const found: AnyType[] = [doc.getText('text'), doc.getArray('array'), doc.getMap('map'), doc.getXmlFragment('xml')]
  for (let i = 0; i < found.length && found.length < 40; i++) {
    const type = found[i]!
    const children = type instanceof Y.Map ? [...type.values()] : type instanceof Y.Array || type instanceof Y.XmlFragment ? type.toArray() : []
    for (const child of children) if (child instanceof Y.AbstractType && !(child as AnyType)._item?.deleted) found.push(child as AnyType)
  }
  return found
}

function nestedValue (random: Random): unknown {
  switch (random.int(6)) {
    case 0: return new Y.Map()
    case 1: return new Y.Array()
    case 2: return new Y.Text(word(random))
    case 3: return new Y.Doc()
    case 4: return { n: random.int(100), list: [1, 'two', null] }
    default: return random.int(1000)
  }
}

/** One random edit of `doc`. */
function edit (random: Random, doc: Y.Doc, undo: Y.UndoManager): void {
  const type = pick(random, typesOf(doc))
  if (random.next() < 0.08) {
    if (random.next() < 0.5) undo.undo()
    else undo.redo()
    return
  }
  if (type instanceof Y.XmlText || type instanceof Y.Text) {
    const length = type.length
    const at = random.int(length + 1)
    const roll = random.int(6)
    if (roll === 0 && length > 0) type.delete(...span(random, length, 3))
    else if (roll === 1 && length > 0) type.format(...span(random, length, 3), { bold: random.next() < 0.7 ? true : null })
    else if (roll === 2 && !(type instanceof Y.XmlText)) type.insertEmbed(at, { image: word(random) })
    else if (roll === 3) type.insert(at, word(random), { italic: true })
    else type.insert(at, word(random))
  } else if (type instanceof Y.XmlFragment) {
    const length = type.length
    const roll = random.int(4)
    if (roll === 0 && length > 0) type.delete(random.int(length), 1)
    else if (roll === 1) {
      const element = new Y.XmlElement(pick(random, ['p', 'h1', 'li']))
      element.setAttribute('class', word(random))
      type.insert(random.int(length + 1), [element])
    } else type.insert(random.int(length + 1), [new Y.XmlText(word(random))])
    if (type instanceof Y.XmlElement && random.next() < 0.3) type.setAttribute('data', word(random))
  } else if (type instanceof Y.Array) {
    const length = type.length
    if (length > 0 && random.next() < 0.3) type.delete(...span(random, length, 2))
    else type.insert(random.int(length + 1), [nestedValue(random), random.int(10)])
  } else if (type instanceof Y.Map) {
    const key = pick(random, ['a', 'b', 'c', 'd'])
    if (random.next() < 0.25) type.delete(key)
    else type.set(key, nestedValue(random))
  }
}

interface Peer {
  doc: Y.Doc
  undo: Y.UndoManager
  /** Every update this peer emitted, in order. */
  emitted: Uint8Array[]
}

function peers (random: Random, count: number): Peer[] {
  return Array.from({ length: count }, () => {
    const doc = new Y.Doc({ gc: random.next() < 0.7 })
    doc.clientID = random.int(2 ** 32)
    const emitted: Uint8Array[] = []
    doc.on('update', (update: Uint8Array) => emitted.push(update))
    const undo = new Y.UndoManager([doc.getText('text'), doc.getArray('array'), doc.getMap('map'), doc.getXmlFragment('xml')], { captureTimeout: 0 })
    return { doc, undo, emitted }
  })
}

/** A random session: peers edit and now and then sync with one another; returns them. */
function session (random: Random, count: number, steps: number): Peer[] {
  const all = peers(random, count)
  for (let step = 0; step < steps; step++) {
    const peer = pick(random, all)
    edit(random, peer.doc, peer.undo)
    if (random.next() < 0.25) {
      const other = pick(random, all)
      if (other !== peer) Y.applyUpdate(other.doc, Y.encodeStateAsUpdate(peer.doc, Y.encodeStateVector(other.doc)))
    }
  }
  return all
}

function shuffled<T> (random: Random, items: T[], window: number): T[] {
  const copy = [...items]
  for (let i = 0; i < copy.length; i++) {
    const j = Math.min(copy.length - 1, i + random.int(window))
    ;[copy[i], copy[j]] = [copy[j]!, copy[i]!]
  }
  return copy
}

/** Updates checked against a document's item index so far (the checks must have run). */
let checkedAgainstItems = 0

/** Feeds `updates` to a fresh relay document: every one must be accepted. Returns the document and its log. */
async function accepted (updates: Uint8Array[], compactMinBytes = 512): Promise<{ doc: StoredDocument, store: MemoryStore, log: ReturnType<typeof captureLog> }> {
  const store = new MemoryStore()
  const log = captureLog('error')
  const doc = await StoredDocument.load(store, id, { compactMinBytes, logger: log.logger })
  for (const update of updates) {
    const prepared = doc.checks.prepare(update)
    if (prepared === null) continue
    if (prepared.lists !== null) checkedAgainstItems++
    await doc.append(prepared)
  }
  return { doc, store, log }
}

/** What a user sees of `doc`, as JSON (keys sorted: their order depends on the order of integration; subdocuments by guid). */
const contentOf = (doc: Y.Doc): string => JSON.stringify({
  text: doc.getText('text').toDelta(),
  array: doc.getArray('array').toJSON(),
  map: doc.getMap('map').toJSON(),
  xml: doc.getXmlFragment('xml').toString()
}, (_key, value: unknown) => {
  if (value instanceof Y.Doc) return `subdocument ${value.guid}`
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value
  return Object.fromEntries(Object.entries(value).sort(([a], [b]) => a < b ? -1 : 1))
})

function loaded (update: Uint8Array): Y.Doc {
  const doc = new Y.Doc()
  Y.applyUpdate(doc, update)
  return doc
}

describe('legitimate updates', () => {
  it('all pass validation: as emitted (in any order), merged, diffed, and as snapshots; what is stored compacts and reloads the same', async () => {
    const seed = testSeed()
    const random = prng(seed)
    try {
      for (let round = 0; round < 12; round++) {
        const all = session(random, 2 + random.int(3), 150)
        // Bring everyone up to date, so that there is one state to compare with. Applying a
        // formatted text can make Yjs clean up formatting locally, a change of its own that
        // the others must get too: exchange until every state is the same, deletions included
        // (they do not move a state vector, so compare snapshots).
        const states = (): string[] => all.map(peer => Y.encodeSnapshot(Y.snapshot(peer.doc)).join())
        for (let pass = 0; pass < 10 && new Set(states()).size > 1; pass++) {
          for (const a of all) for (const b of all) if (a !== b) Y.applyUpdate(b.doc, Y.encodeStateAsUpdate(a.doc, Y.encodeStateVector(b.doc)))
        }
        expect(new Set(states()).size, `seed ${seed}: the peers converge`).toBe(1)
        const expected = contentOf(all[0]!.doc)
        const emitted = all.flatMap(peer => peer.emitted)

        // Every update as emitted, delivered in a shuffled order (some wait for others).
        const { doc, store, log } = await accepted(shuffled(random, emitted, 8))
        expect(log.entries, `seed ${seed}`).toEqual([])
        const stored = (await store.load(id))!
        expect(contentOf(loaded(doc.missingFor(new Uint8Array([0])))), `seed ${seed}`).toEqual(expected)
        const reloaded = await StoredDocument.load(store, id)
        expect(contentOf(loaded(reloaded.missingFor(new Uint8Array([0])))), `seed ${seed}`).toEqual(expected)
        expect(stored.snapshot, `seed ${seed}: something was compacted`).not.toBeNull()

        // Merged runs of consecutive updates, and diffs of those against earlier states.
        const merged: Uint8Array[] = []
        for (let i = 0; i < emitted.length;) {
          const length = 1 + random.int(20)
          merged.push(Y.mergeUpdates(emitted.slice(i, i + length)))
          i += length
        }
        await accepted(shuffled(random, merged, 4))
        const whole = Y.mergeUpdates(emitted)
        const diffs = all.map(peer => Y.diffUpdate(whole, Y.encodeStateVectorFromUpdate(Y.mergeUpdates(peer.emitted.slice(0, random.int(peer.emitted.length + 1))))))
        for (const diff of diffs) inspectUpdate(diff)
        await accepted([...diffs, whole])

        // Snapshots (garbage-collected where the peer collects), then what others lack, from each peer.
        for (const peer of all) {
          const snapshot = Y.encodeStateAsUpdate(peer.doc)
          const other = pick(random, all).doc
          const { doc: fromSnapshot } = await accepted([Y.encodeStateAsUpdate(other), Y.encodeStateAsUpdate(peer.doc, Y.encodeStateVector(other)), snapshot])
          expect(contentOf(loaded(fromSnapshot.missingFor(new Uint8Array([0])))), `seed ${seed}`).toEqual(expected)
        }
      }
      expect(checkedAgainstItems).toBeGreaterThan(100)
    } catch (error) {
      console.error(`legitimate updates test failed with SEED=${seed}`)
      throw error
    }
  }, 60_000)
})
