/**
 * The structural half of update validation: the streaming reader reads exactly what Yjs's
 * decoder reads (and fails where it fails), each shape Yjs mishandles is refused with its
 * reason, sections in ascending client order are normalised, and an update naming too
 * many clients stops the inspection.
 */
import { describe, expect, it } from 'vitest'
import * as encoding from 'lib0/encoding'
import * as Y from 'yjs'
import { ProtocolError } from '../../shared/errors.js'
import { NO_ID, StructKind, UpdateReader } from '../../shared/validation/update-reader.js'
import { MAX_NESTING } from '../../shared/wire/nesting.js'
import { Run, RunKind, TooManyClientsError, inspectUpdate } from '../../shared/validation/update-shape.js'
import { utf16Length } from '../../shared/validation/utf8.js'
import { craftUpdate } from '../helpers/crafted-updates.js'
import { prng, testSeed } from '../helpers/prng.js'

type Random = ReturnType<typeof prng>

/** Every struct and deletion as Yjs's decoder reads them, or 'throws'. */
function readByYjs (update: Uint8Array): unknown {
  let decoded
  try {
    decoded = Y.decodeUpdate(update)
  } catch {
    return 'throws'
  }
  const id = (value: Y.ID | null): unknown => value === null ? null : [value.client, value.clock]
  return {
    structs: decoded.structs.map(struct => {
      const base = [struct.id.client, struct.id.clock, struct.length]
      if (struct instanceof Y.Skip) return [...base, 'skip']
      if (struct instanceof Y.GC) return [...base, 'gc']
      const item = struct as Y.Item
      const parent = typeof item.parent === 'string' ? item.parent : item.parent instanceof Y.ID ? id(item.parent) : null
      return [...base, item.content.getRef(), id(item.origin), id(item.rightOrigin), parent, item.parentSub]
    }),
    deletions: [...decoded.ds.clients].flatMap(([client, ranges]) => ranges.map(({ clock, len }) => [client, clock, len]))
  }
}

/** The same, as the streaming reader reads them. */
function readByReader (update: Uint8Array): unknown {
  try {
    const reader = new UpdateReader(update)
    const structs: unknown[] = []
    while (reader.nextSection()) {
      while (reader.nextStruct()) {
        const base = [reader.client, reader.clock, reader.length]
        if (reader.kind === StructKind.skip) structs.push([...base, 'skip'])
        else if (reader.kind === StructKind.gc) structs.push([...base, 'gc'])
        else {
          const id = (client: number, clock: number): unknown => client === NO_ID ? null : [client, clock]
          const parent = reader.parentName ?? id(reader.parentClient, reader.parentClock)
          structs.push([...base, reader.content, id(reader.originClient, reader.originClock), id(reader.rightClient, reader.rightClock), parent, reader.parentSub])
        }
      }
    }
    const deletions: unknown[] = []
    reader.readDeleteSet((client, clock, length) => deletions.push([client, clock, length]))
    return { structs, deletions }
  } catch {
    return 'throws'
  }
}

/** Updates of every kind of content, from a real Y.Doc. */
function sampleUpdates (): Uint8Array[] {
  const doc = new Y.Doc()
  const updates: Uint8Array[] = []
  doc.on('update', (update: Uint8Array) => updates.push(update))
  const text = doc.getText('text')
  text.insert(0, 'héllo wörld')
  text.format(1, 3, { bold: true })
  text.insertEmbed(2, { image: 'x.png' })
  text.delete(4, 2)
  doc.getArray('array').insert(0, [1, 'two', { three: [3] }, new Uint8Array([4]), new Y.Map(), new Y.Doc({ autoLoad: true })])
  doc.getMap('map').set('k', new Y.Text('nested'))
  const xml = doc.getXmlFragment('xml')
  const element = new Y.XmlElement('p')
  element.setAttribute('class', 'c')
  xml.insert(0, [element, new Y.XmlText('t'), new Y.XmlHook('hook') as never])
  element.insert(0, [new Y.XmlText('inside')])
  updates.push(Y.encodeStateAsUpdate(doc))
  return updates
}

function mutated (random: Random, update: Uint8Array): Uint8Array {
  const bytes = update.slice()
  switch (random.int(3)) {
    case 0: return bytes.slice(0, random.int(bytes.length))
    case 1:
      for (let i = 1 + random.int(3); i > 0; i--) bytes[random.int(bytes.length)]! ^= 1 << random.int(8)
      return bytes
    default:
      bytes[random.int(bytes.length)] = random.int(256)
      return bytes
  }
}

describe('UpdateReader', () => {
  it('reads what Yjs reads, and fails where Yjs fails, on real and mutated updates', () => {
    const seed = testSeed()
    const random = prng(seed)
    const samples = sampleUpdates()
    for (const update of samples) expect(readByReader(update)).toEqual(readByYjs(update))
    for (let i = 0; i < 5000; i++) {
      const update = mutated(random, samples[random.int(samples.length)]!)
      expect(readByReader(update), `seed ${seed}, case ${i}`).toEqual(readByYjs(update))
    }
  })
})

/** An update of one item in root type 't' from client 3 with content reference `content`, written by `write`. */
function oneItem (content: number, write: (encoder: encoding.Encoder) => void): Uint8Array {
  return encoding.encode(encoder => {
    encoding.writeVarUint(encoder, 1)
    encoding.writeVarUint(encoder, 1)
    encoding.writeVarUint(encoder, 3)
    encoding.writeVarUint(encoder, 0)
    encoding.writeUint8(encoder, content)
    encoding.writeVarUint(encoder, 1)
    encoding.writeVarString(encoder, 't')
    write(encoder)
    encoding.writeVarUint(encoder, 0)
  })
}

const refusal = (update: Uint8Array): string => {
  try {
    inspectUpdate(update)
  } catch (error) {
    expect(error).toBeInstanceOf(ProtocolError)
    return (error as Error).message
  }
  return 'accepted'
}

describe('inspectUpdate', () => {
  it('accepts what Yjs writes, unchanged', () => {
    for (const update of sampleUpdates()) expect(inspectUpdate(update).bytes).toBe(update)
  })

  it.each<[string, Uint8Array, RegExp]>([
    ['a client in two sections', craftUpdate([{ client: 4242, clock: 0, structs: [{ text: 'AAAA' }] }, { client: 4242, clock: 0, structs: [{ text: 'BBBB' }] }]), /two sections for client 4242/],
    ['a client in two adjacent sections', craftUpdate([{ client: 7, clock: 0, structs: [{ text: 'AA' }] }, { client: 7, clock: 2, structs: [{ origin: [7, 1], text: 'B' }] }]), /two sections for client 7/],
    ['an empty section', craftUpdate([{ client: 7, clock: 0, structs: [{ text: 'A' }] }, { client: 5, clock: 0, structs: [] }]), /empty section/],
    ['an origin after the item', craftUpdate([{ client: 2 ** 40, clock: 0, structs: [{ origin: [2 ** 40, 5], text: 'x' }] }]), /own or a later id as its origin/],
    ['an item that is its own origin', craftUpdate([{ client: 3, clock: 4, structs: [{ origin: [3, 4], text: 'x' }] }]), /own or a later id as its origin/],
    ['a right origin after the item', craftUpdate([{ client: 3, clock: 0, structs: [{ text: 'ab' }, { right: [3, 9], text: 'x' }] }]), /right origin/],
    ['a parent after the item', craftUpdate([{ client: 3, clock: 0, structs: [{ parent: [3, 1], text: 'x' }] }]), /as its parent/],
    ['a struct of length zero', craftUpdate([{ client: 3, clock: 0, structs: [{ gc: 0 }] }]), /invalid struct/],
    ['an item of length zero', craftUpdate([{ client: 3, clock: 0, structs: [{ text: '' }] }]), /invalid struct/],
    ['a deletion of length zero', craftUpdate([], [[3, [[0, 0]]]]), /invalid deletion/],
    ['a clock beyond 2^53', craftUpdate([{ client: 3, clock: 2 ** 53, structs: [{ gc: 1 }] }]), /invalid struct/],
    ['a deletion beyond 2^53', craftUpdate([], [[3, [[2 ** 53 - 1, 2]]]]), /invalid deletion/],
    ['trailing bytes', new Uint8Array([...craftUpdate([{ client: 3, clock: 0, structs: [{ text: 'x' }] }]), 0]), /trailing bytes/],
    ['an unknown content reference', new Uint8Array([1, 1, 3, 0, 11, 1, 1, 116, 0]), /unknown content reference 11/],
    ['an unknown type reference', craftUpdate([{ client: 3, clock: 0, structs: [{ type: 7 }] }]), /unknown type reference/],
    ['a truncated update', craftUpdate([{ client: 3, clock: 0, structs: [{ text: 'hello' }] }]).slice(0, 8), /malformed Yjs update/]
  ])('refuses %s', (_what, update, reason) => {
    expect(refusal(update)).toMatch(reason)
  })

  it('refuses an update whose string runs past its end into the rest of its frame', () => {
    // The update's last string claims 8 bytes; the frame holding it has them, and more, after the update.
    const update = craftUpdate([{ client: 3, clock: 0, structs: [{ text: 'abcdefgh' }] }])
    const frame = new Uint8Array([...update.subarray(0, update.length - 6), ...new Uint8Array(16)])
    expect(refusal(frame.subarray(0, update.length - 6))).toMatch(/malformed Yjs update/)
  })

  it('refuses strings that are not UTF-8, and values nested too deep for every replica\'s stack', () => {
    const nested = (depth: number): unknown => depth === 0 ? 'leaf' : [nested(depth - 1)]
    const deep = craftUpdate([{ client: 3, clock: 0, structs: [{ any: [nested(MAX_NESTING + 1)] }] }])
    expect(refusal(deep)).toMatch(new RegExp(`nests arrays and objects more than ${MAX_NESTING} deep`))
    const fine = craftUpdate([{ client: 3, clock: 0, structs: [{ any: [nested(MAX_NESTING)] }] }])
    expect(refusal(fine)).toBe('accepted')
    const doc = new Y.Doc()
    Y.applyUpdate(doc, fine)
    expect(doc.getArray('t').length).toBe(1)
    // The same depth in JSON content, an embed, a format and subdocument options (Yjs writes JSON back with JSON.stringify, which recurses).
    const deepJson = '['.repeat(5000) + ']'.repeat(5000)
    const tooDeep = /nests arrays and objects more than 256 deep/
    expect(refusal(oneItem(2, e => { encoding.writeVarUint(e, 1); encoding.writeVarString(e, deepJson) }))).toMatch(tooDeep)
    expect(refusal(oneItem(5, e => encoding.writeVarString(e, deepJson)))).toMatch(tooDeep)
    expect(refusal(oneItem(6, e => { encoding.writeVarString(e, 'bold'); encoding.writeVarString(e, deepJson) }))).toMatch(tooDeep)
    expect(refusal(oneItem(9, e => { encoding.writeVarString(e, 'guid'); encoding.writeAny(e, { a: nested(MAX_NESTING) } as never) }))).toMatch(tooDeep)
    const fineJson = oneItem(2, e => { encoding.writeVarUint(e, 1); encoding.writeVarString(e, JSON.stringify(nested(MAX_NESTING - 1))) })
    expect(refusal(fineJson)).toBe('accepted')
    expect(() => Y.mergeUpdates([fineJson, craftUpdate([{ client: 4, clock: 0, structs: [{ text: 'x' }] }])])).not.toThrow()
    // A text item whose string is "é" cut after its first byte: the update ends [length 2, C3 A9, no deletions].
    const text = craftUpdate([{ client: 3, clock: 0, structs: [{ text: 'é' }] }])
    const cut = new Uint8Array([...text.subarray(0, text.length - 4), 1, 0xc3, 0])
    expect(() => Y.decodeUpdate(cut)).toThrow()
    expect(refusal(cut)).toMatch(/not valid UTF-8/)
  })

  it('refuses a subdocument without options, as Yjs fails on it', () => {
    const update = encoding.encode(encoder => {
      encoding.writeVarUint(encoder, 1)
      encoding.writeVarUint(encoder, 1)
      encoding.writeVarUint(encoder, 3)
      encoding.writeVarUint(encoder, 0)
      encoding.writeUint8(encoder, 9)
      encoding.writeVarUint(encoder, 1)
      encoding.writeVarString(encoder, 'array')
      encoding.writeVarString(encoder, 'guid')
      encoding.writeAny(encoder, null)
      encoding.writeVarUint(encoder, 0)
    })
    expect(() => Y.decodeUpdate(update)).toThrow()
    expect(refusal(update)).toMatch(/subdocument without options/)
  })

  it('puts sections in ascending client order into descending order, byte for byte, so that merging keeps them', () => {
    const ascending = craftUpdate([100, 200, 300].map((client, i) => ({ client, clock: 0, structs: [{ text: 'abc'[i]! }] })), [[100, [[0, 1]]]])
    const dropped = new Y.Doc()
    Y.applyUpdate(dropped, Y.mergeUpdates([ascending, new Uint8Array([0, 0])]))
    expect(dropped.getText('t').toString()).not.toBe('bc')
    const shape = inspectUpdate(ascending)
    expect(shape.bytes.length).toBe(ascending.length)
    expect(shape.sections.map(section => section.client)).toEqual([300, 200, 100])
    expect(inspectUpdate(shape.bytes).bytes).toBe(shape.bytes)
    const merged = new Y.Doc()
    Y.applyUpdate(merged, Y.mergeUpdates([shape.bytes, new Uint8Array([0, 0])]))
    const direct = new Y.Doc()
    Y.applyUpdate(direct, ascending)
    expect(merged.getText('t').toString()).toBe(direct.getText('t').toString())
    expect(merged.getText('t').toString()).toBe('bc')
  })

  it('stops once an update names more clients than allowed, in its sections or its deletions', () => {
    const sections = craftUpdate([5, 4, 3].map(client => ({ client, clock: 0, structs: [{ gc: 1 }] })))
    expect(inspectUpdate(sections, 3).sections).toHaveLength(3)
    expect(() => inspectUpdate(sections, 2)).toThrow(TooManyClientsError)
    const deletions = craftUpdate([{ client: 5, clock: 0, structs: [{ gc: 1 }] }], [[5, [[0, 1]]], [6, [[0, 1]]], [7, [[0, 1]]]])
    expect(() => inspectUpdate(deletions, 2)).toThrow(TooManyClientsError)
    expect(inspectUpdate(deletions, 3).deletions.size).toBe(3)
  })

  it('describes a typing burst as one run, and notes other clients\' ids it refers to', () => {
    const doc = new Y.Doc()
    doc.clientID = 1
    const text = doc.getText('t')
    Y.applyUpdate(doc, craftUpdate([{ client: 9, clock: 0, structs: [{ text: 'xy' }] }]))
    const updates: Uint8Array[] = []
    doc.on('update', (update: Uint8Array) => updates.push(update))
    doc.transact(() => { for (const char of 'hello') text.insert(1 + text.length - 2, char) })
    const shape = inspectUpdate(updates[0]!)
    expect(shape.runs.length / Run.size).toBe(1)
    expect(Array.from(shape.runs).slice(0, Run.size)).toEqual([1, 0, 5, RunKind.content, 9, 0, 9, 1, -1, NO_ID, 0])
    expect(shape.references).toEqual(new Map([[9, 1]]))
  })
})

describe('utf16Length', () => {
  const fatal = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })
  const expected = (bytes: Uint8Array): number => {
    try {
      return fatal.decode(bytes).length
    } catch {
      return -1
    }
  }

  it('says what a fatal TextDecoder says: the length of valid UTF-8 in UTF-16 units, or that it is not valid', () => {
    const cases = [
      [], [0x41], [0xef, 0xbb, 0xbf, 0x41], [0xc3, 0xa9], [0xe2, 0x82, 0xac], [0xf0, 0x9f, 0x98, 0x80], [0xf4, 0x8f, 0xbf, 0xbf],
      [0xc0, 0x80], [0xc1, 0xbf], [0xe0, 0x80, 0x80], [0xe0, 0x9f, 0xbf], [0xed, 0xa0, 0x80], [0xed, 0xbf, 0xbf], [0xf0, 0x8f, 0xbf, 0xbf],
      [0xf4, 0x90, 0x80, 0x80], [0xf5, 0x80, 0x80, 0x80], [0xff], [0x80], [0xc3], [0xe2, 0x82], [0xf0, 0x9f, 0x98], [0xc3, 0x41], [0xe2, 0x41, 0xac]
    ].map(bytes => new Uint8Array(bytes))
    for (const bytes of cases) expect(utf16Length(bytes, 0, bytes.length), `${[...bytes]}`).toBe(expected(bytes))
    const seed = testSeed()
    const random = prng(seed)
    for (let i = 0; i < 20000; i++) {
      // Mostly valid text with a byte changed now and then, and short runs of any bytes.
      const bytes = random.int(2) === 0
        ? new TextEncoder().encode(Array.from({ length: random.int(8) }, () => String.fromCodePoint(random.int(4) === 0 ? random.int(0x110000) : random.int(0x800))).join(''))
        : new Uint8Array(Array.from({ length: random.int(6) }, () => 0x80 + random.int(0x80)))
      if (bytes.length > 0 && random.int(3) === 0) bytes[random.int(bytes.length)] = random.int(256)
      expect(utf16Length(bytes, 0, bytes.length), `seed ${seed}, case ${i}: ${[...bytes]}`).toBe(expected(bytes))
    }
  })
})
