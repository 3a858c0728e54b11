/**
 * Replica figures: opening 1,000 small documents from SqliteStore (Node) and from
 * IndexedDbStore (headless Chromium), and the automerge-paper trace applied through a
 * replica's document with SqliteStore persistence, next to bare Yjs, with durable()
 * latency against a relay while it runs.
 */
import { join } from 'node:path'
import * as Y from 'yjs'
import { Replica } from '../client/replica.js'
import { SqliteStore } from '../client/node.js'
import { bundlePage, launchChromium, servePage } from '../test/helpers/browser.js'
import { startRelayProcess } from '../test/helpers/relay-process.js'
import { UNLIMITED } from './servers.js'
import { loadTrace, patchesOf, type Patch } from './traces.js'
import { percentile, withTempDir } from './stats.js'

const DOCS = 1000

const ms = (value: number): number => +value.toFixed(2)

export function openManySqlite (): Promise<Record<string, number | string>> {
  return withTempDir(async dir => {
    const path = join(dir, 'local.db')
    const writer = new Replica({ store: new SqliteStore(path) })
    for (let i = 0; i < DOCS; i++) (await writer.open(`docs/${i}`)).getText('t').insert(0, `document number ${i}`)
    await writer.close()

    const reader = new Replica({ store: new SqliteStore(path) })
    let start = performance.now()
    for (let i = 0; i < DOCS; i++) await reader.open(`docs/${i}`)
    const sequential = performance.now() - start
    await reader.close()
    const concurrentReader = new Replica({ store: new SqliteStore(path) })
    start = performance.now()
    await Promise.all(Array.from({ length: DOCS }, (_, i) => concurrentReader.open(`docs/${i}`)))
    const concurrent = performance.now() - start
    await concurrentReader.close()
    return { documents: DOCS, 'open one after another (ms)': ms(sequential), 'open all at once (ms)': ms(concurrent), 'per document, one after another (ms)': ms(sequential / DOCS) }
  })
}

export async function openManyIndexedDb (): Promise<Record<string, number | string>> {
  const server = await servePage(await bundlePage())
  const browser = await launchChromium()
  try {
    const page = await browser.context.newPage()
    await page.goto(server.url)
    await page.waitForFunction(() => typeof (globalThis as { petal?: unknown }).petal !== 'undefined')
    await page.evaluate(async (count) => {
      const { Replica, IndexedDbStore } = (globalThis as any).petal
      const writer = new Replica({ store: new IndexedDbStore({ name: 'bench' }) })
      for (let i = 0; i < count; i++) (await writer.open(`docs/${i}`)).getText('t').insert(0, `document number ${i}`)
      await writer.close()
    }, DOCS)
    await page.reload()
    await page.waitForFunction(() => typeof (globalThis as { petal?: unknown }).petal !== 'undefined')
    const timings = await page.evaluate(async (count) => {
      const { Replica, IndexedDbStore } = (globalThis as any).petal
      const reader = new Replica({ store: new IndexedDbStore({ name: 'bench' }) })
      let start = performance.now()
      for (let i = 0; i < count; i++) await reader.open(`docs/${i}`)
      const sequential = performance.now() - start
      await reader.close()
      const concurrentReader = new Replica({ store: new IndexedDbStore({ name: 'bench' }) })
      start = performance.now()
      await Promise.all(Array.from({ length: count }, (_, i) => concurrentReader.open(`docs/${i}`)))
      const concurrent = performance.now() - start
      await concurrentReader.close()
      return { sequential, concurrent }
    }, DOCS)
    return { documents: DOCS, 'open one after another (ms)': ms(timings.sequential), 'open all at once (ms)': ms(timings.concurrent), 'per document, one after another (ms)': ms(timings.sequential / DOCS) }
  } finally {
    await browser.close()
    await server.close()
  }
}

/** Applies the patches as one transaction each, yielding to the event loop every `chunk` edits. */
async function replay (text: Y.Text, patches: Patch[], chunk: number, afterChunk?: () => void): Promise<void> {
  for (let i = 0; i < patches.length; i += chunk) {
    for (const [pos, deleted, inserted] of patches.slice(i, i + chunk)) {
      text.doc!.transact(() => {
        if (deleted > 0) text.delete(pos, deleted)
        if (inserted !== '') text.insert(pos, inserted)
      })
    }
    afterChunk?.()
    await new Promise(resolve => setImmediate(resolve))
  }
}

export async function replicaTrace (): Promise<Record<string, number | string>> {
  const trace = loadTrace('automerge-paper')
  const patches = patchesOf(trace)
  const CHUNK = 100

  // The baseline is what an app with any persistence or provider pays: Yjs encodes every
  // transaction once the document has an update listener.
  const bare = new Y.Doc()
  let updateBytes = 0
  bare.on('update', (update: Uint8Array) => { updateBytes += update.length })
  let start = performance.now()
  await replay(bare.getText('t'), patches, CHUNK)
  const bareMs = performance.now() - start

  const local = await withTempDir(async dir => {
    const replica = new Replica({ store: new SqliteStore(join(dir, 'local.db')) })
    const doc = await replica.open('paper')
    start = performance.now()
    await replay(doc.getText('t'), patches, CHUNK)
    await replica.close() // includes committing what is pending
    return performance.now() - start
  })

  const withRelay = await withTempDir(async dir => {
    const relay = await startRelayProcess(join(dir, 'relay'), UNLIMITED)
    const replica = new Replica({ store: new SqliteStore(join(dir, 'local.db')), relays: [relay.url] })
    const doc = await replica.open('paper')
    await replica.doc('paper').synced()
    const latencies: number[] = []
    const waiting: Array<Promise<void>> = []
    start = performance.now()
    await replay(doc.getText('t'), patches, CHUNK, () => {
      const asked = performance.now()
      waiting.push(replica.doc('paper').durable().then(() => { latencies.push(performance.now() - asked) }))
    })
    await Promise.all(waiting)
    const total = performance.now() - start
    const text = doc.getText('t').toString()
    await replica.close()
    await relay.stop('SIGTERM')
    if (text !== trace.endContent) throw new Error('replica replay diverged from endContent')
    latencies.sort((a, b) => a - b)
    return { total, p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), samples: latencies.length }
  })

  return {
    edits: patches.length,
    'edits per event-loop turn': CHUNK,
    'bare Y.Doc with an update listener (ms)': ms(bareMs),
    'bytes of its updates': updateBytes,
    'replica + SqliteStore, no relay (ms)': ms(local),
    'replica / bare': +(local / bareMs).toFixed(2),
    'replica + SqliteStore + relay, all durable (ms)': ms(withRelay.total),
    'replica with relay / bare': +(withRelay.total / bareMs).toFixed(2),
    'durable() latency p50 (ms)': ms(withRelay.p50),
    'durable() latency p99 (ms)': ms(withRelay.p99),
    'durable() samples': withRelay.samples
  }
}
