/** A seeded PRNG (mulberry32) so random tests replay: print the seed on failure. */
export function prng (seed: number): { next(): number, int(max: number): number, bytes(n: number): Uint8Array } {
  let state = seed >>> 0
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const int = (max: number): number => Math.floor(next() * max)
  return { next, int, bytes: n => Uint8Array.from({ length: n }, () => int(256)) }
}

/** The seed for a random test: `SEED` from the environment, or a fresh one. */
export function testSeed (): number {
  return process.env.SEED !== undefined ? Number(process.env.SEED) : Math.floor(Math.random() * 2 ** 31)
}
