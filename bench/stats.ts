/** Arithmetic and scratch space every benchmark module uses. */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** The `p` quantile (0..1) of values sorted in ascending order. */
export const percentile = (sorted: ArrayLike<number>, p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!

/** A sorted copy of `values`, ascending. */
export const ascending = (values: number[]): number[] => [...values].sort((a, b) => a - b)

/** The median of `values` (the mean of the middle two for an even count). */
export function median (values: number[]): number {
  const sorted = ascending(values)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/** `value` with `digits` decimals, as a number. */
export const round = (value: number, digits: number): number => +value.toFixed(digits)

/** Runs `fn` with a fresh temporary directory, removed afterwards. */
export function withTempDir<T> (fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'petaldb-bench-'))
  return fn(dir).finally(() => rmSync(dir, { recursive: true, force: true }))
}
