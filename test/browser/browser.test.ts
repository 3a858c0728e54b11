/**
 * The browser build in real headless Chromium: a page edits a document offline with
 * IndexedDbStore, is reloaded and still has it, then syncs through a relay started by the
 * test with a Node replica, both ways.
 */
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Page } from 'playwright-core'
import * as Y from 'yjs'
import { Replica } from '../../client/replica.js'
import { SqliteStore } from '../../client/node.js'
import { startRelay, type Relay } from '../../server/relay.js'
import { bundlePage, chromiumAvailable, launchChromium, servePage, type TestPageServer } from '../helpers/browser.js'
import { until } from '../helpers/events.js'
import { captureLog } from '../helpers/log-capture.js'
import { tempDir } from '../helpers/temp.js'

declare const petal: {
  Replica: typeof Replica
  IndexedDbStore: typeof import('../../shared/storage/indexeddb-store.js').IndexedDbStore
}
declare const window: { replica: Replica, doc: Y.Doc }

// Chromium is installed by .ci/run; on a machine without it the browser tests cannot run
// and are skipped, except in CI, where a missing browser is a failure.
const runBrowserTests = chromiumAvailable || process.env.CI !== undefined

describe.runIf(runBrowserTests)('browser build in headless Chromium', () => {
  let bundle: string
  let server: TestPageServer
  let browser: Awaited<ReturnType<typeof launchChromium>>
  const root = tempDir()

  beforeAll(async () => {
    bundle = await bundlePage()
    server = await servePage(bundle)
    browser = await launchChromium()
  })
  afterAll(async () => {
    await browser?.close()
    await server?.close()
  })

  it('bundles one copy of Yjs and no Node modules', () => {
    expect(bundle.match(/Yjs was already imported/g) ?? []).toHaveLength(1)
    expect(bundle).not.toMatch(/node_modules\/(ws|better-sqlite3|pino)\//)
  })

  it('edits offline, survives a reload, then syncs through a relay with a Node replica', async () => {
    const page: Page = await browser.context.newPage()
    const errors: string[] = []
    page.on('pageerror', error => errors.push(error.message))
    await page.goto(server.url)
    await page.waitForFunction(() => typeof petal !== 'undefined')

    // Offline: no relay configured at all.
    await page.evaluate(async () => {
      const replica = new petal.Replica({ store: new petal.IndexedDbStore({ name: 'e2e' }) })
      const doc = await replica.open('notes/browser')
      doc.getText('t').insert(0, 'written offline in Chromium')
      await replica.close()
    })
    await page.reload()
    await page.waitForFunction(() => typeof petal !== 'undefined')

    const relay: Relay = await startRelay({ port: 0, dataDir: join(root, 'relay'), logger: captureLog('warn').logger })
    const node = new Replica({ store: new SqliteStore(join(root, 'node.db')), relays: [relay.url] })
    try {
      const afterReload = await page.evaluate(async (relayUrl) => {
        const replica = new petal.Replica({ store: new petal.IndexedDbStore({ name: 'e2e' }), relays: [relayUrl] })
        const doc = await replica.open('notes/browser')
        const text = doc.getText('t').toString()
        const pending = replica.doc('notes/browser').pending
        window.replica = replica
        window.doc = doc
        await replica.doc('notes/browser').durable()
        return { text, pending, pendingAfter: replica.doc('notes/browser').pending }
      }, relay.url)
      expect(afterReload).toEqual({ text: 'written offline in Chromium', pending: 1, pendingAfter: 0 })

      const nodeDoc = await node.open('notes/browser')
      await node.doc('notes/browser').synced()
      expect(nodeDoc.getText('t').toString()).toBe('written offline in Chromium')

      nodeDoc.getText('t').insert(0, 'Node says hi. ')
      await node.doc('notes/browser').durable()
      await page.waitForFunction(() => window.doc.getText('t').toString().startsWith('Node says hi. '))
      await page.evaluate(() => window.doc.getText('t').insert(window.doc.getText('t').length, ' Browser answers.'))
      await until('the browser edit to reach Node', cb => { nodeDoc.on('update', cb); return () => nodeDoc.off('update', cb) },
        () => nodeDoc.getText('t').toString().endsWith(' Browser answers.'))
      await page.evaluate(() => window.replica.close())
      expect(errors).toEqual([])
    } finally {
      await node.close()
      await relay.close()
      await page.close()
    }
  })
})
