/**
 * Presence on a relay costs about its text, not the parsed objects: 1,000 states of 64 KiB
 * of `[{},{},...]` (within the default limits) grew the heap by about 1 GB when states were
 * kept parsed; kept as text they cost a little over their 64 MB.
 */
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { expect, it } from 'vitest'

it('keeps 1,000 states of 64 KiB in about their size as text', () => {
  const fixture = fileURLToPath(new URL('./fixtures/awareness-memory.ts', import.meta.url))
  const output = execFileSync(process.execPath, ['--expose-gc', '--import', 'tsx', fixture], { encoding: 'utf8', timeout: 60_000 })
  const { growth, text, size } = JSON.parse(output) as { growth: number, text: number, size: number }
  expect(size).toBe(1000)
  expect(growth).toBeLessThan(2 * text)
})
