/**
 * Crafted updates for fuzzing and simulation: honest edits by random clients against a
 * mirror of what the relay should hold, and the hostile shapes a relay must refuse or
 * normalise, each with the answer it must get.
 */
import * as Y from 'yjs'
import { craftUpdate, type CraftedSection, type CraftedStruct, type Id } from './crafted-updates.js'
import type { prng } from './prng.js'

type Random = ReturnType<typeof prng>

/** What the relay must answer to a crafted update. */
export type Expected = 'stored' | 4400 | 1008

export interface Crafted {
  kind: string
  update: Uint8Array
  expected: Expected
}

/**
 * Crafts updates against `mirror` (the document as the relay should hold it): honest edits
 * by random clients, and the hostile shapes, each with the answer it must get. Client ids
 * are drawn from disjoint ranges per use so that shapes do not collide.
 */
export class Crafter {
  private nextClient: number
  /** The first of three clients whose honest edits continue where they left off. */
  private readonly continuing: number

  /** `firstClient`: where this crafter's client ids start (crafters sharing a document need disjoint ranges). */
  constructor (private readonly random: Random, private readonly mirror: Y.Doc, firstClient = 10_000) {
    this.nextClient = firstClient
    this.continuing = firstClient - 10_000 + 7
  }

  private fresh (): number {
    return this.nextClient += 1 + this.random.int(50)
  }

  /** Ids of items of `mirror` in root type `name` (not deleted), and of string items anywhere. */
  private items (name: string): Id[] {
    const type = this.mirror.get(name)
    const ids: Id[] = []
    for (const structs of this.mirror.store.clients.values()) {
      for (const struct of structs) {
        if (struct instanceof Y.Item && struct.parent === type && !struct.deleted) ids.push([struct.id.client, struct.id.clock + this.random.int(struct.length)])
      }
    }
    return ids
  }

  private anyItem (name: string): Id | null {
    const ids = this.items(name)
    return ids.length === 0 ? null : ids[this.random.int(ids.length)]!
  }

  private honest (): Crafted {
    const doc = new Y.Doc()
    Y.applyUpdate(doc, Y.encodeStateAsUpdate(this.mirror))
    // Set after loading the mirror: Yjs would give a client that receives its own id a random new one.
    doc.clientID = this.random.next() < 0.5 ? this.fresh() : this.continuing + this.random.int(3)
    const before = Y.encodeStateVector(doc)
    const text = doc.getText(this.random.next() < 0.7 ? 't' : 'u')
    const roll = this.random.int(4)
    if (roll === 0 && text.length > 2) text.delete(this.random.int(text.length - 1), 1)
    else if (roll === 1) doc.getMap('m').set(`k${this.random.int(5)}`, this.random.next() < 0.5 ? new Y.Map() : this.random.int(100))
    else text.insert(this.random.int(text.length + 1), 'xyz'.slice(this.random.int(3)))
    return { kind: 'honest edit', update: Y.encodeStateAsUpdate(doc, before), expected: 'stored' }
  }

  next (): Crafted {
    const item = (struct: CraftedStruct): CraftedSection => ({ client: this.fresh(), clock: 0, structs: [struct] })
    switch (this.random.int(13)) {
      case 0: { // Sections in ascending client order, stored normalised.
        const clients = [this.fresh(), this.fresh(), this.fresh()]
        return { kind: 'ascending sections', update: craftUpdate(clients.map(client => ({ client, clock: 0, structs: [{ parent: 't', text: 'abc'.slice(this.random.int(3)) || 'a' }] }))), expected: 'stored' }
      }
      case 1: { // A client in two sections.
        const client = this.fresh()
        return { kind: 'a client twice', update: craftUpdate([{ client, clock: 0, structs: [{ parent: 't', text: 'AAAA' }] }, { client, clock: this.random.int(2) * 4, structs: [{ parent: 't', text: 'BBBB' }] }]), expected: 4400 }
      }
      case 2: // An empty section.
        return { kind: 'empty section', update: craftUpdate([item({ parent: 't', text: 'e' }), { client: 5, clock: 0, structs: [] }]), expected: 4400 }
      case 3: { // An item whose origin, right origin or parent is its own id or a later one.
        const client = this.fresh()
        const clock = this.random.int(3)
        const later: Id = [client, clock + this.random.int(4)]
        const struct: CraftedStruct = [{ origin: later, text: 's' }, { right: later, text: 's' }, { parent: later, text: 's' }][this.random.int(3)]!
        return { kind: 'own or later id', update: craftUpdate([{ client, clock, structs: [struct] }], this.random.next() < 0.5 ? [[client, [[clock, 1]]]] : []), expected: 4400 }
      }
      case 4: // An item after an id of another client that nobody has: it waits, everywhere.
        return { kind: 'waits for another client', update: craftUpdate([item({ origin: [this.fresh(), this.random.int(5)], text: 'w' })]), expected: 'stored' }
      case 5: { // A parent that is not a type.
        const parent = this.anyItem('t')
        if (parent === null) return this.honest()
        return { kind: 'parent not a type', update: craftUpdate([item({ parent, text: 'p' })]), expected: 4400 }
      }
      case 6: { // An origin and a right origin in different lists.
        const origin = this.anyItem('t')
        const right = this.anyItem('u')
        if (origin === null || right === null) return this.honest()
        const [first, second] = this.random.next() < 0.5 ? [origin, right] : [right, origin]
        return { kind: 'origins in different lists', update: craftUpdate([item({ origin: first, right: second, text: 'd' })]), expected: 4400 }
      }
      case 7: { // A delete set of length zero, or cut short.
        const good = craftUpdate([item({ parent: 'u', text: 'q' })], [[7, [[0, 1]]]])
        return this.random.next() < 0.5
          ? { kind: 'deletion of length zero', update: craftUpdate([item({ parent: 'u', text: 'q' })], [[7, [[0, 0]]]]), expected: 4400 }
          : { kind: 'truncated delete set', update: good.slice(0, good.length - 1 - this.random.int(2)), expected: 4400 }
      }
      case 8: // Deletions of ids nobody has yet: they wait, everywhere.
        return { kind: 'deletes future ids', update: craftUpdate([], [[this.fresh(), [[this.random.int(10), 1 + this.random.int(5)]]]]), expected: 'stored' }
      case 9: { // A value nested deeper than every replica's stack can read and write back.
        let value: unknown = this.random.int(10)
        for (let depth = 257 + this.random.int(200); depth > 0; depth--) value = this.random.next() < 0.5 ? [value] : { k: value }
        return { kind: 'nested too deep', update: craftUpdate([item({ parent: 'a', any: [value] })]), expected: 4400 }
      }
      default:
        return this.honest()
    }
  }
}

