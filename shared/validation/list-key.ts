/**
 * Keys of the lists a Yjs item can live in: a parent (a root type, named, or a type item,
 * by id) and, for map-like parents, the item's key in it. Items of one list are ordered
 * among themselves, so an item's origin and right origin must be in the same list.
 *
 * A key is a 53-bit hash of an unambiguous description of the list, seeded per process so
 * that collisions cannot be prepared offline. A collision can only make two lists look the
 * same, i.e. let an inconsistent item through, never refuse a consistent one.
 */

import { hash53 } from '../hash.js'

const SEED = Math.floor(Math.random() * 2 ** 32)

/** The key of the list of `name`'s root type (its map entry `sub`, if given). */
export function rootListKey (name: string, sub: string | null): number {
  return hash53(`r${name.length}:${name}${subPart(sub)}`, SEED)
}

/** The key of the list of the type item `client:clock` (its map entry `sub`, if given). */
export function nestedListKey (client: number, clock: number, sub: string | null): number {
  return hash53(`n${client}:${clock}${subPart(sub)}`, SEED)
}

const subPart = (sub: string | null): string => sub === null ? '|' : `/${sub}`
