/**
 * Peer-to-peer sync in real headless Chromium: tabs of one origin over BroadcastChannel,
 * two tabs writing one IndexedDB database without losing each other's updates (also while
 * both compact), and WebRTC between two browser contexts (two devices) that keeps working
 * once the relay is stopped.
 */
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Browser, Page } from 'playwright-core'
import type * as Y from 'yjs'
import type { Replica } from '../../client/replica.js'
import { startRelay } from '../../server/relay.js'
import { bundlePage, chromiumAvailable, launchBrowser, launchChromium, servePage, type TestPageServer } from '../helpers/browser.js'
import { captureLog } from '../helpers/log-capture.js'
import { tempDir } from '../helpers/temp.js'

declare const petal: {
  Replica: typeof Replica
  IndexedDbStore: typeof import('../../shared/storage/indexeddb-store.js').IndexedDbStore
}
declare const window: { replica: Replica, doc: Y.Doc }

const runBrowserTests = chromiumAvailable || process.env.CI !== undefined

async function ready (page: Page, url: string): Promise<Page> {
  await page.goto(url)
  await page.waitForFunction(() => typeof petal !== 'undefined')
  return page
}

/** Opens `docId` in the page on an IndexedDbStore named `db`, kept as `window.replica` / `window.doc`. */
async function openIn (page: Page, db: string, docId: string, options: Record<string, unknown> = {}): Promise<void> {
  await page.evaluate(async ({ db, docId, options }) => {
    window.replica = new petal.Replica({ store: new petal.IndexedDbStore({ name: db }), ...options })
    window.doc = await window.replica.open(docId)
  }, { db, docId, options })
}

const textOf = (page: Page): Promise<string> => page.evaluate(() => window.doc.getText('t').toString())

describe.runIf(runBrowserTests)('peers in headless Chromium', () => {
  let server: TestPageServer
  const root = tempDir()

  beforeAll(async () => {
    server = await servePage(await bundlePage())
  })
  afterAll(async () => {
    await server?.close()
  })

  describe('tabs of one origin', () => {
    let browser: Awaited<ReturnType<typeof launchChromium>>
    beforeAll(async () => { browser = await launchChromium() })
    afterAll(async () => { await browser?.close() })

    it('sync over BroadcastChannel with no relay', async () => {
      const [one, two] = await Promise.all([browser.context.newPage(), browser.context.newPage()])
      try {
        await Promise.all([ready(one, server.url), ready(two, server.url)])
        await openIn(one, 'tabs', 'tabs/doc')
        await openIn(two, 'tabs', 'tabs/doc')
        await one.evaluate(() => window.doc.getText('t').insert(0, 'from tab one'))
        await two.waitForFunction(() => window.doc.getText('t').toString() === 'from tab one')
        await two.evaluate(() => window.doc.getText('t').insert(0, 'tab two and '))
        await one.waitForFunction(() => window.doc.getText('t').toString() === 'tab two and from tab one')
        const peers = await one.evaluate(() => window.replica.doc('tabs/doc').peers)
        expect(peers).toHaveLength(1)
        expect(peers[0]!.isRelay).toBe(false)
      } finally {
        await Promise.all([one.close(), two.close()])
      }
    })

    it('lose none of each other\'s offline edits in one IndexedDB database, also while both compact, across reloads', async () => {
      const [one, two] = await Promise.all([browser.context.newPage(), browser.context.newPage()])
      try {
        await Promise.all([ready(one, server.url), ready(two, server.url)])
        // No channel between them: only the store keeps them from losing each other's updates.
        await openIn(one, 'race', 'race/doc', { tabs: false })
        await openIn(two, 'race', 'race/doc', { tabs: false })
        const write = (page: Page, tab: string): Promise<void> => page.evaluate(async (tab) => {
          const chunk = 'x'.repeat(1024)
          for (let i = 0; i < 30; i++) {
            window.doc.getText('t').insert(0, `<${tab}${i}>${chunk}`)
            await new Promise(resolve => setTimeout(resolve, 0))
          }
        }, tab)
        await Promise.all([write(one, 'A'), write(two, 'B')]) // 30 KiB each: past the compaction threshold in both
        await Promise.all([one.evaluate(() => window.replica.close()), two.evaluate(() => window.replica.close())])
        await Promise.all([ready(one, server.url), ready(two, server.url)])
        await openIn(one, 'race', 'race/doc', { tabs: false })
        await openIn(two, 'race', 'race/doc', { tabs: false })
        const markers = ['A', 'B'].flatMap(tab => Array.from({ length: 30 }, (_, i) => `<${tab}${i}>`))
        for (const page of [one, two]) {
          const text = await textOf(page)
          expect(markers.filter(marker => !text.includes(marker))).toEqual([])
          expect(await page.evaluate(() => window.replica.doc('race/doc').pending)).toBe(60)
        }
      } finally {
        await Promise.all([one.close(), two.close()])
      }
    })
  })

  describe('WebRTC between two devices', () => {
    let browser: Browser
    beforeAll(async () => { browser = await launchBrowser() })
    afterAll(async () => { await browser?.close() })

    it('links two browser contexts through a relay, and keeps syncing after the relay stops', async () => {
      const relay = await startRelay({ port: 0, dataDir: join(root, 'relay'), logger: captureLog('error').logger })
      const contexts = await Promise.all([browser.newContext(), browser.newContext()])
      try {
        const [a, b] = await Promise.all(contexts.map(async context => await ready(await context.newPage(), server.url)))
        for (const page of [a!, b!]) await openIn(page, 'device', 'rtc/doc', { relays: [relay.url], webrtc: true })
        await a!.evaluate(() => window.doc.getText('t').insert(0, 'hello over the relay'))
        await b!.waitForFunction(() => window.doc.getText('t').toString() === 'hello over the relay')
        // Both see each other as a direct peer (besides the relay).
        for (const page of [a!, b!]) await page.waitForFunction(() => window.replica.doc('rtc/doc').peers.some(peer => !peer.isRelay && peer.state === 'acked'), undefined, { timeout: 15_000 })
        await relay.close()
        await b!.evaluate(() => window.doc.getText('t').insert(0, 'direct: '))
        await a!.waitForFunction(() => window.doc.getText('t').toString() === 'direct: hello over the relay')
      } finally {
        await Promise.all(contexts.map(context => context.close()))
        await relay.close()
      }
    })
  })
})
