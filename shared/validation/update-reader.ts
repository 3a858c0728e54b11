/**
 * A streaming reader of Yjs (v1) updates. It reads every field exactly as Yjs 13.6 does
 * (`lazyStructReaderGenerator` in yjs/src/utils/updates.js, `readItemContent` and the
 * content readers in yjs/src/structs), so that it accepts what Yjs decodes and fails where
 * Yjs fails, but it materialises nothing: the current section and struct are plain fields,
 * overwritten by the next read. `Y.decodeUpdate` builds an object per struct (about a
 * hundred bytes of heap for a two-byte GC struct) and hides where sections begin and end,
 * which validation needs to see.
 *
 * A length that claims more than is left throws here (and in lib0 since 0.2.120; earlier
 * versions read on into whatever followed the update in its buffer). Callers still refuse a
 * position beyond the update's length.
 */
import * as decoding from 'lib0/decoding'
import { MAX_NESTING, nestsTooDeep, tooDeep } from '../wire/nesting.js'
import { utf16Length } from './utf8.js'

/** Kinds of struct. */
export const StructKind = { gc: 0, item: 1, skip: 2 } as const

/** Item content references (the low five bits of a struct's info byte). */
export const Content = { deleted: 1, json: 2, binary: 3, string: 4, embed: 5, format: 6, type: 7, any: 8, doc: 9 } as const

/** `originClient` and friends when the id is absent. */
export const NO_ID = -1

const BITS5 = 31
const BIT6 = 32
const BIT7 = 64
const BIT8 = 128
/** The info byte of a Skip struct (it must be exactly this; see the struct reader). */
const SKIP_INFO = 10
/** Type references that carry a name: YXmlElement (node name) and YXmlHook (hook name). */
const NAMED_TYPES = new Set([3, 5])
const LAST_TYPE_REF = 6

/** Type tags of lib0's `any` encoding that Yjs treats as no value. */
const ANY_UNDEFINED = 127
const ANY_NULL = 126

const EMPTY = new Uint8Array([0, 0])
let sharedReader: UpdateReader | null = null

/** See the module comment. Errors are whatever lib0 or this reader throws: callers wrap them. */
export class UpdateReader {
  private readonly decoder: decoding.Decoder
  private sectionsLeft: number
  private structsLeft = 0
  private clockAfter = 0

  /** Number of client sections the update declares. */
  sectionCount: number
  /** Byte offset where the current section (its header) starts. */
  sectionStart = 0
  /** Structs the current section declares. */
  sectionStructs = 0
  /** Client of the current section. */
  client = 0

  /** The current struct: its kind ({@link StructKind}), first clock and length. */
  kind: number = StructKind.gc
  clock = 0
  length = 0
  /** Content reference of an item ({@link Content}), 0 for other structs. */
  content = 0
  /** The item's origin (left neighbour when it was inserted), or {@link NO_ID}. */
  originClient = NO_ID
  originClock = 0
  /** The item's right origin, or {@link NO_ID}. */
  rightClient = NO_ID
  rightClock = 0
  /** The parent as a root type name, when the item names it. */
  parentName: string | null = null
  /** The parent as the id of a type item, when the item gives it ({@link NO_ID} otherwise). */
  parentClient = NO_ID
  parentClock = 0
  /** The key of the item in a map-like parent, when the item gives one. */
  parentSub: string | null = null

  constructor (bytes: Uint8Array) {
    this.decoder = decoding.createDecoder(bytes)
    this.sectionCount = this.sectionsLeft = decoding.readVarUint(this.decoder)
  }

  /**
   * A reader of `bytes` that is shared: each call returns the same reader, started afresh.
   * For readings that end before the next one starts (a relay reads every update it
   * receives: one reader per update would be garbage at once).
   */
  static shared (bytes: Uint8Array): UpdateReader {
    const reader = sharedReader ??= new UpdateReader(EMPTY)
    const decoder = reader.decoder
    decoder.arr = bytes
    decoder.pos = 0
    reader.structsLeft = 0
    reader.clockAfter = 0
    reader.sectionStart = reader.sectionStructs = reader.client = 0
    reader.sectionCount = reader.sectionsLeft = decoding.readVarUint(decoder)
    return reader
  }

  /** Lets the shared reader drop the bytes it last read (an update may be megabytes). */
  static releaseShared (): void {
    if (sharedReader !== null) sharedReader.decoder.arr = EMPTY
  }

  /** Byte offset of the next unread byte. */
  get pos (): number {
    return this.decoder.pos
  }

  /** Moves to the next section; false once every section has been read (the delete set follows). */
  nextSection (): boolean {
    if (this.structsLeft !== 0) throw new Error('the previous section was not read to its end')
    if (this.sectionsLeft === 0) return false
    this.sectionsLeft--
    this.sectionStart = this.decoder.pos
    this.sectionStructs = this.structsLeft = decoding.readVarUint(this.decoder)
    this.client = decoding.readVarUint(this.decoder)
    this.clockAfter = decoding.readVarUint(this.decoder)
    return true
  }

  /** Reads the next struct of the current section; false at the end of the section. */
  nextStruct (): boolean {
    if (this.structsLeft === 0) return false
    this.structsLeft--
    const d = this.decoder
    const info = decoding.readUint8(d)
    this.clock = this.clockAfter
    this.content = 0
    this.originClient = this.rightClient = this.parentClient = NO_ID
    this.parentName = this.parentSub = null
    if (info === SKIP_INFO) {
      this.kind = StructKind.skip
      this.length = decoding.readVarUint(d)
    } else if ((info & BITS5) !== 0) {
      this.kind = StructKind.item
      this.readItem(info)
    } else {
      this.kind = StructKind.gc
      this.length = decoding.readVarUint(d)
    }
    this.clockAfter = this.clock + this.length
    return true
  }

  /**
   * Reads the delete set, which follows the last section, calling `visit` with each range
   * as written (Yjs accepts them in any order and a client in several blocks).
   */
  readDeleteSet (visit: (client: number, clock: number, length: number) => void): void {
    if (this.sectionsLeft !== 0 || this.structsLeft !== 0) throw new Error('the delete set follows the last section')
    const d = this.decoder
    const clients = decoding.readVarUint(d)
    for (let i = 0; i < clients; i++) {
      const client = decoding.readVarUint(d)
      const ranges = decoding.readVarUint(d)
      for (let j = 0; j < ranges; j++) visit(client, decoding.readVarUint(d), decoding.readVarUint(d))
    }
  }

  private readItem (info: number): void {
    const d = this.decoder
    if ((info & BIT8) !== 0) {
      this.originClient = decoding.readVarUint(d)
      this.originClock = decoding.readVarUint(d)
    }
    if ((info & BIT7) !== 0) {
      this.rightClient = decoding.readVarUint(d)
      this.rightClock = decoding.readVarUint(d)
    }
    // Yjs reads the parent only when the item has neither origin, and then its key if BIT6 is set.
    if ((info & (BIT7 | BIT8)) === 0) {
      if (decoding.readVarUint(d) === 1) {
        this.parentName = decoding.readVarString(d)
      } else {
        this.parentClient = decoding.readVarUint(d)
        this.parentClock = decoding.readVarUint(d)
      }
      if ((info & BIT6) !== 0) this.parentSub = decoding.readVarString(d)
    }
    this.content = info & BITS5
    this.length = this.readContent(this.content)
  }

  /** Reads an item's content as Yjs's content readers do; returns its length. */
  private readContent (content: number): number {
    const d = this.decoder
    switch (content) {
      case Content.deleted:
        return decoding.readVarUint(d)
      case Content.json: {
        const count = decoding.readVarUint(d)
        for (let i = 0; i < count; i++) {
          const json = decoding.readVarString(d)
          if (json !== 'undefined') parseJson(json)
        }
        return count
      }
      case Content.binary:
        decoding.readVarUint8Array(d)
        return 1
      case Content.string:
        // Yjs counts UTF-16 code units.
        return skipString(d)
      case Content.embed:
        parseJson(decoding.readVarString(d))
        return 1
      case Content.format:
        decoding.readVarString(d)
        parseJson(decoding.readVarString(d))
        return 1
      case Content.type: {
        const type = decoding.readVarUint(d)
        if (type > LAST_TYPE_REF) throw new Error(`unknown type reference ${type}`)
        if (NAMED_TYPES.has(type)) decoding.readVarString(d)
        return 1
      }
      case Content.any: {
        const count = decoding.readVarUint(d)
        for (let i = 0; i < count; i++) skipAny(d, 0)
        return count
      }
      case Content.doc: {
        decoding.readVarString(d)
        // Yjs reads `opts.shouldLoad` of the options it decodes here: null or undefined throws.
        const type = d.arr[d.pos]
        if (type === ANY_NULL || type === ANY_UNDEFINED) throw new Error('subdocument without options')
        skipAny(d, 0)
        return 1
      }
      default:
        // Yjs has no reader for content references 10 to 31 (10 is a Skip only as the whole info byte).
        throw new Error(`unknown content reference ${content}`)
    }
  }
}

/** Moves past `length` bytes, which must be there. */
function skipBytes (d: decoding.Decoder, length: number): void {
  d.pos += length
  if (d.pos > d.arr.length) throw new Error('a length runs past the end of the update')
}

/** Reads a string as lib0 does, without making it; returns its length in UTF-16 code units. */
function skipString (d: decoding.Decoder): number {
  const length = decoding.readVarUint(d)
  const start = d.pos
  skipBytes(d, length)
  const units = utf16Length(d.arr, start, d.pos)
  if (units < 0) throw new Error('a string is not valid UTF-8')
  return units
}

/** Reads a value as lib0's `readAny` does (failing where it fails), without making it; `depth`: arrays and objects it is in. */
function skipAny (d: decoding.Decoder, depth: number): void {
  const type = decoding.readUint8(d)
  switch (type) {
    case ANY_UNDEFINED:
    case ANY_NULL:
    case 121: // false
    case 120: // true
      return
    case 125: // integer
      decoding.readVarInt(d)
      return
    case 124: // float32
      skipBytes(d, 4)
      return
    case 123: // float64
    case 122: // bigint64
      skipBytes(d, 8)
      return
    case 119: // string
      skipString(d)
      return
    case 118: // object: keys and values
    case 117: { // array
      if (depth >= MAX_NESTING) throw new Error(tooDeep('a value'))
      const count = decoding.readVarUint(d)
      for (let i = 0; i < count; i++) {
        if (type === 118) skipString(d)
        skipAny(d, depth + 1)
      }
      return
    }
    case 116: // Uint8Array
      skipBytes(d, decoding.readVarUint(d))
      return
    default:
      throw new Error(`unknown value type ${type}`)
  }
}

/** Parses JSON as Yjs does (it throws where Yjs throws), refusing values nested deeper than {@link MAX_NESTING}. */
function parseJson (json: string): void {
  JSON.parse(json)
  if (nestsTooDeep(json)) throw new Error(tooDeep('a value'))
}
