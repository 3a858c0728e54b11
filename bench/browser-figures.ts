/**
 * Chromium store figures: the automerge-paper trace typed into a Replica on IndexedDbStore
 * next to bare Yjs in the same page and, on a prefix of it, to y-indexeddb (time until everything is stored,
 * and what each database holds after the trace and after each of three reloads), and
 * opening 1,000 small documents with y-indexeddb (the IndexedDbStore figure is
 * `open-1000-indexeddb`). Each library runs in its own origin, so the browser's estimate
 * of storage use is its own.
 */
import { fileURLToPath } from 'node:url'
import type { Page } from 'playwright-core'
import * as Y from 'yjs'
import { bundlePage, launchChromium, servePage, type TestPageServer } from '../test/helpers/browser.js'
import type { bench } from './browser/store-page.js'
import { loadTrace, patchesOf } from './traces.js'
import { median } from './stats.js'

type Bench = typeof bench
const RELOADS = 3
const DOCS = 1000
const ms = (value: number): number => +value.toFixed(2)

/** Runs `measure` with a Chromium page and a server per name, each its own origin serving the store page. */
async function withPages<T> (names: string[], measure: (open: (name: string) => Promise<Page>) => Promise<T>): Promise<T> {
  const bundle = await bundlePage(fileURLToPath(new URL('./browser/store-page.ts', import.meta.url)))
  const servers = new Map<string, TestPageServer>()
  for (const name of names) servers.set(name, await servePage(bundle))
  const browser = await launchChromium()
  try {
    const page = await browser.context.newPage()
    return await measure(async name => {
      await page.goto(servers.get(name)!.url)
      await page.waitForFunction(() => 'bench' in globalThis)
      return page
    })
  } finally {
    await browser.close()
    for (const server of servers.values()) await server.close()
  }
}

/** Calls `bench[method](...args)` in the page. */
const call = <K extends keyof Bench>(page: Page, method: K, ...args: Parameters<Bench[K]>): Promise<Awaited<ReturnType<Bench[K]>>> =>
  page.evaluate(([name, values]) => {
    const page = (globalThis as unknown as { bench: Record<string, (...args: unknown[]) => unknown> }).bench
    return page[name]!(...values)
  }, [method, args] as [string, unknown[]]) as Promise<Awaited<ReturnType<Bench[K]>>>

interface StoreRun {
  /** Typing the trace until everything is stored (ms, median). */
  ms: number
  /** Bare Yjs in the same page (ms, median). */
  bareMs: number
  /** Opening the document after each reload (ms), and the database after the trace and after each reload. */
  reopenMs: number[]
  sizes: Array<{ entries: number, bytes: number }>
  usage: number[]
}

/** Bare Yjs and the store alternately, `runs` times (each store run in a fresh database; the last is reloaded). */
async function runStore (open: (origin: string) => Promise<Page>, origin: string, name: 'petal' | 'y-indexeddb', json: string, endContent: string, runs: number): Promise<StoreRun> {
  let page = await open(origin)
  await call(page, 'setTrace', json)
  const bare: number[] = []
  const typed: number[] = []
  let database = ''
  for (let run = 1; run <= runs; run++) {
    bare.push(await call(page, 'bare'))
    database = `paper-${run}`
    const result = await (name === 'petal' ? call(page, 'petal', database) : call(page, 'yIndexeddb', database))
    if (result.text !== endContent) throw new Error(`${name}: the text typed differs from the trace's end content`)
    typed.push(result.ms)
    if (run < runs) await call(page, 'deleteDatabase', database)
  }
  const sizes = [await call(page, 'databaseSize', database)]
  const usage = [await call(page, 'storageUsage')]
  const reopenMs: number[] = []
  for (let i = 0; i < RELOADS; i++) {
    page = await open(origin) // a reload: a new document in the same origin
    const reopened = await (name === 'petal' ? call(page, 'reopenPetal', database) : call(page, 'reopenYIndexeddb', database))
    if (reopened.text !== endContent) throw new Error(`${name}: the reopened text differs from the trace's end content`)
    reopenMs.push(reopened.ms)
    sizes.push(await call(page, 'databaseSize', database))
    usage.push(await call(page, 'storageUsage'))
  }
  return { ms: median(typed), bareMs: median(bare), reopenMs, sizes, usage }
}

/**
 * y-indexeddb's time grows with the square of the edits (it re-reads and merges its log as it
 * grows: 14 s for the first 10,000 edits of this trace, 148 s for 30,000 here), so the whole
 * trace would take hours: it is compared with PetalDB on this prefix.
 */
const PREFIX_EDITS = 10_000

/** The text after `patches`, as the trace's end content is checked. */
function textAfter (patches: ReturnType<typeof patchesOf>): string {
  const text = new Y.Doc().getText('t')
  for (const [pos, deleted, inserted] of patches) {
    if (deleted > 0) text.delete(pos, deleted)
    if (inserted !== '') text.insert(pos, inserted)
  }
  return text.toString()
}

export async function chromiumReplicaTrace (): Promise<Record<string, number | string>> {
  const trace = loadTrace('automerge-paper')
  const patches = patchesOf(trace)
  const prefix = patches.slice(0, PREFIX_EDITS)
  const prefixText = textAfter(prefix)
  return await withPages(['petal', 'petal-prefix', 'y-indexeddb'], async open => {
    const petal = await runStore(open, 'petal', 'petal', JSON.stringify(patches), trace.endContent, 3)
    const petalPrefix = await runStore(open, 'petal-prefix', 'petal', JSON.stringify(prefix), prefixText, 1)
    const yIdb = await runStore(open, 'y-indexeddb', 'y-indexeddb', JSON.stringify(prefix), prefixText, 1)
    const figures: Record<string, number | string> = {
      edits: patches.length,
      'edits per task': 100,
      'bare Y.Doc with an update listener, median of 3 (ms)': ms(petal.bareMs),
      'replica + IndexedDbStore, until close(), median of 3 (ms)': ms(petal.ms),
      'replica / bare': +(petal.ms / petal.bareMs).toFixed(2),
      [`first ${PREFIX_EDITS} edits: bare Y.Doc (ms)`]: ms(petalPrefix.bareMs),
      [`first ${PREFIX_EDITS} edits: replica + IndexedDbStore (ms)`]: ms(petalPrefix.ms),
      [`first ${PREFIX_EDITS} edits: y-indexeddb, until its writes committed (ms)`]: ms(yIdb.ms),
      [`first ${PREFIX_EDITS} edits: y-indexeddb / replica`]: +(yIdb.ms / petalPrefix.ms).toFixed(1)
    }
    for (const [label, run] of [['PetalDB, whole trace', petal], [`PetalDB, first ${PREFIX_EDITS} edits`, petalPrefix], [`y-indexeddb, first ${PREFIX_EDITS} edits`, yIdb]] as const) {
      run.sizes.forEach((size, i) => {
        const when = i === 0 ? 'after typing' : `after reload ${i}`
        figures[`${label}: database ${when}: entries`] = size.entries
        figures[`${label}: database ${when}: KiB stored`] = +(size.bytes / 1024).toFixed(1)
        figures[`${label}: origin storage ${when} (KiB, browser estimate)`] = +(run.usage[i]! / 1024).toFixed(1)
      })
      figures[`${label}: open after reload, median (ms)`] = ms(median(run.reopenMs))
    }
    return figures
  })
}

export async function openManyYIndexedDb (): Promise<Record<string, number | string>> {
  return await withPages(['y-indexeddb'], async open => {
    await call(await open('y-indexeddb'), 'writeManyYIndexeddb', DOCS)
    const timings = await call(await open('y-indexeddb'), 'openManyYIndexeddb', DOCS)
    return {
      documents: DOCS,
      'open one after another (ms)': ms(timings.sequential),
      'open all at once (ms)': ms(timings.concurrent),
      'per document, one after another (ms)': ms(timings.sequential / DOCS)
    }
  })
}
