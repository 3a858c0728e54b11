/**
 * A replica process killed with SIGKILL while typing loses at most the turn of the event
 * loop in progress: reopened, its document holds the text after a prefix of the trace that
 * ends at a turn boundary (the turn in progress is in whole or not at all), every change it
 * had reported saved is there, and it counts exactly that prefix's edits as pending.
 */
import { spawn } from 'node:child_process'
import { mkdirSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { Replica } from '../../client/replica.js'
import { SqliteStore } from '../../client/node.js'
import { prng, testSeed } from '../helpers/prng.js'
import { syntheticTrace } from '../helpers/synthetic-trace.js'
import { tempDir } from '../helpers/temp.js'

const fixture = fileURLToPath(new URL('./fixtures/replica-mid-trace.ts', import.meta.url))
const root = tempDir()
const EDITS = 4000

/**
 * Runs the typist child, which kills itself before edit `killAt` if that is not negative,
 * else is killed once it has started `turns` turns; returns its progress file.
 */
async function typeAndKill (dbPath: string, seed: number, killAt: number, turns: number): Promise<string[]> {
  const progressPath = `${dbPath}.progress`
  mkdirSync(dirname(dbPath), { recursive: true })
  const child = spawn(process.execPath, ['--import', 'tsx', fixture, dbPath, progressPath, String(seed), String(EDITS), String(killAt)], { stdio: ['ignore', 'pipe', 'inherit'] })
  let started = 0
  createInterface({ input: child.stdout }).on('line', () => {
    if (++started === turns && killAt < 0) child.kill('SIGKILL')
  })
  const signal = await new Promise(resolve => child.once('exit', (_code, sig) => resolve(sig)))
  expect(signal).toBe('SIGKILL')
  return readFileSync(progressPath, 'utf8').split('\n').filter(line => line !== '')
}

describe('a replica killed mid-trace', () => {
  // Killed by the test at any moment (also while it commits), or by itself in the middle of a turn.
  it.each([
    [0, 'by the test'], [1, 'by the test'], [2, 'in the middle of a turn'], [3, 'in the middle of a turn']
  ])('reopens with a consistent prefix and exact pending (run %i, killed %s)', async (run, how) => {
    const base = testSeed()
    const seed = base + run
    try {
      const { turns, texts } = syntheticTrace(seed, EDITS)
      const random = prng(seed)
      const mid = how === 'by the test' ? -1 : EDITS / 10 + random.int(EDITS * 0.8)
      const dbPath = join(root, `run-${run}`, 'local.db')
      const progress = await typeAndKill(dbPath, seed, mid, 2 + random.int(turns.length - 4))

      const number = (line: string | undefined): number => Number(line?.split(' ')[1] ?? 0)
      const lastTurn = number(progress.filter(line => line.startsWith('turn ')).at(-1))
      const saved = Math.max(0, ...progress.filter(line => line.startsWith('saved ')).map(number))
      const turnLength = turns.find((_, i) => turns.slice(0, i).reduce((sum, t) => sum + t.length, 0) === lastTurn)?.length ?? 0

      const replica = new Replica({ store: new SqliteStore(dbPath), peerId: 'typist' })
      const handle = replica.doc('trace')
      await handle.whenLoaded()
      const pending = handle.pending
      expect(handle.ydoc.getText('t').toString()).toBe(texts[pending])
      expect(pending).toBeGreaterThanOrEqual(saved)
      // The turn in progress is stored in whole or not at all; one killed before its commit, not at all.
      expect(mid < 0 ? [lastTurn, lastTurn + turnLength] : [lastTurn]).toContain(pending)
      if (mid >= 0) expect(mid - lastTurn).toBeGreaterThanOrEqual(0)
      if (mid >= 0) expect(mid - lastTurn).toBeLessThan(turnLength)
      await replica.close()
    } catch (error) {
      console.error(`replica crash test failed with SEED=${base} (run ${run})`)
      throw error
    }
  })
})
