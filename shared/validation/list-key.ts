/**
 * Keys of the lists a Yjs item can live in: a parent (a root type, named, or a type item,
 * by id) and, for map-like parents, the item's key in it. Items of one list are ordered
 * among themselves, so an item's origin and right origin must be in the same list.
 *
 * A key is a 53-bit hash of an unambiguous description of the list, seeded per process so
 * that collisions cannot be prepared offline. A collision can only make two lists look the
 * same, i.e. let an inconsistent item through, never refuse a consistent one.
 */

const SEED = Math.floor(Math.random() * 2 ** 32)

/** The key of the list of `name`'s root type (its map entry `sub`, if given). */
export function rootListKey (name: string, sub: string | null): number {
  return hash53(`r${name.length}:${name}${subPart(sub)}`)
}

/** The key of the list of the type item `client:clock` (its map entry `sub`, if given). */
export function nestedListKey (client: number, clock: number, sub: string | null): number {
  return hash53(`n${client}:${clock}${subPart(sub)}`)
}

const subPart = (sub: string | null): string => sub === null ? '|' : `/${sub}`

/** cyrb53 (public domain): a fast 53-bit string hash with good dispersion. */
function hash53 (text: string): number {
  let h1 = 0xdeadbeef ^ SEED
  let h2 = 0x41c6ce57 ^ SEED
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i)
    h1 = Math.imul(h1 ^ ch, 2654435761)
    h2 = Math.imul(h2 ^ ch, 1597334677)
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507)
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909)
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507)
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909)
  return 4294967296 * (2097151 & h2) + (h1 >>> 0)
}
