/**
 * Yjs (v1) updates written byte by byte with lib0, as a hostile or foreign encoder would:
 * sections in any order, any client twice, any references.
 */
import * as encoding from 'lib0/encoding'

/** A Yjs id: [client, clock]. */
export type Id = [client: number, clock: number]

/** One struct of a crafted section. */
export type CraftedStruct =
  | { gc: number }
  | { skip: number }
  | {
    /** Left neighbour at insertion. */
    origin?: Id
    /** Right neighbour at insertion. */
    right?: Id
    /** A root type name or the id of a type item; written only without origin and right origin. */
    parent?: string | Id
    /** Key in a map-like parent. */
    sub?: string
    /** Content: a string, a type (its type reference: 0 array, 1 map, 2 text, ...), deleted content of a length, or JSON-like values. */
    text?: string
    type?: number
    deleted?: number
    any?: unknown[]
  }

export interface CraftedSection {
  client: number
  clock: number
  structs: CraftedStruct[]
}

/** Deletions: [client, [[clock, length], ...]] blocks, written as given. */
export type CraftedDeletions = Array<[client: number, ranges: Array<[clock: number, length: number]>]>

/** The bytes of an update with `sections` and `deletions`, in the order given. */
export function craftUpdate (sections: CraftedSection[], deletions: CraftedDeletions = []): Uint8Array {
  return encoding.encode(encoder => {
    encoding.writeVarUint(encoder, sections.length)
    for (const { client, clock, structs } of sections) {
      encoding.writeVarUint(encoder, structs.length)
      encoding.writeVarUint(encoder, client)
      encoding.writeVarUint(encoder, clock)
      for (const struct of structs) writeStruct(encoder, struct)
    }
    encoding.writeVarUint(encoder, deletions.length)
    for (const [client, ranges] of deletions) {
      encoding.writeVarUint(encoder, client)
      encoding.writeVarUint(encoder, ranges.length)
      for (const [clock, length] of ranges) {
        encoding.writeVarUint(encoder, clock)
        encoding.writeVarUint(encoder, length)
      }
    }
  })
}

function writeStruct (encoder: encoding.Encoder, struct: CraftedStruct): void {
  if ('gc' in struct) {
    encoding.writeUint8(encoder, 0)
    encoding.writeVarUint(encoder, struct.gc)
    return
  }
  if ('skip' in struct) {
    encoding.writeUint8(encoder, 10)
    encoding.writeVarUint(encoder, struct.skip)
    return
  }
  const content = struct.type !== undefined ? 7 : struct.deleted !== undefined ? 1 : struct.any !== undefined ? 8 : 4
  encoding.writeUint8(encoder, content | (struct.origin ? 0x80 : 0) | (struct.right ? 0x40 : 0) | (struct.sub !== undefined ? 0x20 : 0))
  if (struct.origin) writeId(encoder, struct.origin)
  if (struct.right) writeId(encoder, struct.right)
  if (!struct.origin && !struct.right) {
    const parent = struct.parent ?? 't'
    if (typeof parent === 'string') {
      encoding.writeVarUint(encoder, 1)
      encoding.writeVarString(encoder, parent)
    } else {
      encoding.writeVarUint(encoder, 0)
      writeId(encoder, parent)
    }
    if (struct.sub !== undefined) encoding.writeVarString(encoder, struct.sub)
  }
  if (content === 7) encoding.writeVarUint(encoder, struct.type!)
  else if (content === 1) encoding.writeVarUint(encoder, struct.deleted!)
  else if (content === 8) {
    encoding.writeVarUint(encoder, struct.any!.length)
    for (const value of struct.any!) encoding.writeAny(encoder, value as never)
  } else encoding.writeVarString(encoder, struct.text ?? 'x')
}

function writeId (encoder: encoding.Encoder, [client, clock]: Id): void {
  encoding.writeVarUint(encoder, client)
  encoding.writeVarUint(encoder, clock)
}

/** An update of one GC struct of length 1 for each of `count` clients from `first` on (about 8 bytes per client). */
export function gcStructsOfClients (first: number, count: number): Uint8Array {
  return encoding.encode(encoder => {
    encoding.writeVarUint(encoder, count)
    for (let client = first + count - 1; client >= first; client--) {
      encoding.writeVarUint(encoder, 1)
      encoding.writeVarUint(encoder, client)
      encoding.writeVarUint(encoder, 0)
      encoding.writeUint8(encoder, 0)
      encoding.writeVarUint(encoder, 1)
    }
    encoding.writeVarUint(encoder, 0)
  })
}
