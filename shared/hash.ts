/**
 * The one string hash of PetalDB, used where a well mixed number is needed from a string:
 * placement scores (seed 0, so every relay and client computes the same ones) and the keys
 * of the validator's item lists (a per-process random seed).
 */

/**
 * A 53-bit string hash (cyrb53, public domain): fast, well mixed, identical in every
 * JavaScript engine. Placement persists its results implicitly (where documents live), so
 * its output for a given text and seed must never change.
 */
export function hash53 (text: string, seed = 0): number {
  let h1 = 0xdeadbeef ^ seed
  let h2 = 0x41c6ce57 ^ seed
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    h1 = Math.imul(h1 ^ c, 2654435761)
    h2 = Math.imul(h2 ^ c, 1597334677)
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909)
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909)
  return 4294967296 * (2097151 & h2) + (h1 >>> 0)
}
