/**
 * The notes demo (examples/notes) in real headless Chromium, as two people on two devices
 * (two browser contexts) would use it, typing with the keyboard: they see each other's
 * text, cursors and names; one goes offline, writes, reloads the page (served by the
 * service worker, the note restored from IndexedDB) and comes back; both converge, and the
 * status line says what happened at each step. A note deleted on one device (and on the relay) leaves the
 * other's list. With DEMO_SCREENSHOT=1 it writes examples/notes/screenshot.png.
 */
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { startDemo, type Demo } from '../../examples/notes/server.js'
import { chromiumAvailable, launchBrowser } from '../helpers/browser.js'
import { captureLog } from '../helpers/log-capture.js'
import { tempDir } from '../helpers/temp.js'

const runBrowserTests = chromiumAvailable || process.env.CI !== undefined
const SCREENSHOT = fileURLToPath(new URL('../../examples/notes/screenshot.png', import.meta.url))
/** How long any one step may take. */
const STEP_MS = 15_000

interface Device {
  context: BrowserContext
  page: Page
  errors: string[]
}

/** A fresh browser context (a device of its own) on the demo, with its user named `name`. */
async function device (browser: Browser, url: string, name: string): Promise<Device> {
  const context = await browser.newContext({ viewport: { width: 820, height: 500 }, deviceScaleFactor: 2 })
  const page = await context.newPage()
  page.setDefaultTimeout(STEP_MS)
  const errors: string[] = []
  page.on('pageerror', error => errors.push(error.message))
  await page.goto(url)
  await page.fill('#user-name', name)
  return { context, page, errors }
}

/** The editor's text as its lines show it, without widgets (remote cursors and their names, the placeholder). */
const editorText = (page: Page): Promise<string> => page.evaluate(() => Array.from(document.querySelectorAll('.cm-content > .cm-line'), line => {
  const copy = line.cloneNode(true) as HTMLElement
  copy.querySelectorAll('.cm-ySelectionCaret, .cm-placeholder, .cm-widgetBuffer').forEach(widget => widget.remove())
  return copy.textContent
}).join('\n'))

const statusOf = async (page: Page): Promise<string> => await page.textContent('#note-status') ?? ''
const titles = (page: Page): Promise<string[]> => page.locator('#note-list .title').allTextContents()
const poll = <T>(read: () => Promise<T>) => expect.poll(read, { timeout: STEP_MS })

/** The README's screenshot: the two devices side by side, each with a caption. */
async function writeScreenshot (browser: Browser, shots: Array<{ png: Buffer, caption: string }>): Promise<void> {
  const page = await browser.newPage({ viewport: { width: 1700, height: 400 }, deviceScaleFactor: 1 })
  const figures = shots.map(({ png, caption }) => `<figure><img src="data:image/png;base64,${png.toString('base64')}"><figcaption>${caption}</figcaption></figure>`)
  await page.setContent(`<style>
    body { margin: 0; padding: 20px; display: flex; gap: 20px; background: #e6e2da; font: 15px system-ui, sans-serif; color: #3d4349 }
    figure { margin: 0; flex: 1 } img { width: 100%; border-radius: 10px; box-shadow: 0 1px 4px #0002 } figcaption { margin-top: 10px; text-align: center }
  </style>${figures.join('')}`)
  await page.screenshot({ path: SCREENSHOT, fullPage: true })
  await page.close()
}

describe.runIf(runBrowserTests)('notes demo in headless Chromium', () => {
  let demo: Demo
  let browser: Browser
  const root = tempDir()

  beforeAll(async () => {
    demo = await startDemo({ port: 0, relayPort: 0, dataDir: join(root, 'relay'), logger: captureLog('warn').logger })
    browser = await launchBrowser()
  })
  afterAll(async () => {
    await browser?.close()
    await demo?.close()
  })

  it('two devices type into one note, see each other, and converge after one wrote offline across a reload', { timeout: 90_000 }, async () => {
    const [ada, grace] = await Promise.all([device(browser, demo.url, 'Ada'), device(browser, demo.url, 'Grace')])
    const { page: a } = ada
    const { page: g } = grace

    // Ada writes two notes; the list is a document too, so Grace's list shows them.
    await a.click('#new-note')
    await a.keyboard.type('Reading list\nThe Overstory\nPiranesi')
    await a.click('#new-note')
    await a.keyboard.type('Trip to Lisbon\nFlights: Tuesday 9:40\nPack: charger, sandals')
    await poll(() => statusOf(a)).toBe('Saved on the server')
    await poll(() => titles(g)).toEqual(['Trip to Lisbon', 'Reading list'])

    // Grace opens it, adds a line; each sees the other's text, cursor and name.
    await g.click('#note-list a:has-text("Trip to Lisbon")')
    await poll(() => editorText(g)).toBe('Trip to Lisbon\nFlights: Tuesday 9:40\nPack: charger, sandals')
    await poll(() => statusOf(g)).toBe('Saved on the server')
    await g.click('.cm-content')
    await g.keyboard.press('Control+End')
    await g.keyboard.type('\nBook: tram 28 tour')
    await poll(() => editorText(a)).toBe('Trip to Lisbon\nFlights: Tuesday 9:40\nPack: charger, sandals\nBook: tram 28 tour')
    await a.locator('.cm-ySelectionInfo', { hasText: 'Grace' }).waitFor()
    await g.locator('.cm-ySelectionInfo', { hasText: 'Ada' }).waitFor()
    await poll(() => statusOf(g)).toBe('Saved on the server')
    const screenshots = process.env.DEMO_SCREENSHOT === '1'
    const adaShot = screenshots ? await a.screenshot() : null

    // Grace goes offline: the replica's socket is dropped (the page closes it on `offline`),
    // and what she writes is saved on her device, counted as pending.
    await g.waitForFunction(() => document.getElementById('shell-status')?.textContent?.includes('opens offline'))
    await grace.context.setOffline(true)
    await poll(() => statusOf(g)).toBe('Offline')
    await g.click('.cm-content')
    await g.keyboard.press('Control+End')
    await g.keyboard.type('\nWritten offline')
    await poll(() => statusOf(g)).toMatch(/^Offline · \d+ pending$/)
    if (adaShot !== null) {
      await writeScreenshot(browser, [
        { png: adaShot, caption: 'Ada sees Grace’s cursor; everything is saved on the server' },
        { png: await g.screenshot(), caption: `Grace is offline and keeps writing: ${(await statusOf(g)).replace(/^Offline · (\d+) pending$/, '$1 changes')} saved on her device only` }
      ])
    }

    // Meanwhile Ada writes too, and the server has it; Grace, offline, cannot.
    await a.click('.cm-content')
    await a.keyboard.press('Control+Home')
    await a.keyboard.press('End')
    await a.keyboard.type(' (May)')
    await poll(() => statusOf(a)).toBe('Saved on the server')

    // Grace reloads while offline: the service worker serves the page, IndexedDB the note.
    const reloaded = await g.reload()
    expect(reloaded?.fromServiceWorker()).toBe(true)
    await poll(() => editorText(g)).toBe('Trip to Lisbon\nFlights: Tuesday 9:40\nPack: charger, sandals\nBook: tram 28 tour\nWritten offline')
    await poll(() => statusOf(g)).toMatch(/^Offline · \d+ pending$/)

    // Back online: her changes go to the server, Ada's come in, and both have the same note.
    await grace.context.setOffline(false)
    await poll(() => statusOf(g)).toBe('Saved on the server')
    const converged = 'Trip to Lisbon (May)\nFlights: Tuesday 9:40\nPack: charger, sandals\nBook: tram 28 tour\nWritten offline'
    await poll(() => editorText(g)).toBe(converged)
    await poll(() => editorText(a)).toBe(converged)
    await poll(() => titles(g)).toEqual(['Trip to Lisbon (May)', 'Reading list'])
    expect(await statusOf(a)).toBe('Saved on the server')

    // Grace deletes the reading list, which Ada has open: it leaves Ada's list and screen.
    await a.click('#note-list a:has-text("Reading list")')
    await g.click('#note-list a:has-text("Reading list")')
    await poll(() => editorText(g)).toBe('Reading list\nThe Overstory\nPiranesi')
    const deletedId = decodeURIComponent(new URL(g.url()).hash.slice(1))
    expect(deletedId).toMatch(/^notes\//)
    await g.click('#delete-note')
    await poll(() => titles(a)).toEqual(['Trip to Lisbon (May)'])
    // ...and from the relay, through its document API (a page of another origin: CORS).
    await poll(async () => (await fetch(`${demo.relay.url.replace('ws:', 'http:')}/v1/docs/${deletedId}`)).status).toBe(404)
    expect(await titles(g)).toEqual(['Trip to Lisbon (May)'])
    await poll(() => a.textContent('#empty')).toBe('This note was deleted on another device.')

    expect([...ada.errors, ...grace.errors]).toEqual([])
    await Promise.all([ada.context.close(), grace.context.close()])
  })
})
