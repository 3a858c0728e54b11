/**
 * Real headless Chromium for browser tests: the page bundle is built with esbuild and
 * served from loopback (IndexedDB needs an http origin); Chromium is Debian's, driven by
 * playwright-core, with a fresh profile directory.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'
import { chromium, type Browser, type BrowserContext } from 'playwright-core'

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
export const chromiumAvailable = existsSync(CHROMIUM_PATH)

const CHROMIUM_FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'
]

/** Bundles `entry` (default test/browser/pages/page-entry.ts) for the browser; returns the code. */
export async function bundlePage (entry = fileURLToPath(new URL('../browser/pages/page-entry.ts', import.meta.url))): Promise<string> {
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    write: false,
    logLevel: 'silent'
  })
  return result.outputFiles[0]!.text
}

export interface TestPageServer {
  url: string
  close(): Promise<void>
}

/** Serves an empty page that loads `bundle` as a module, on 127.0.0.1. */
export async function servePage (bundle: string): Promise<TestPageServer> {
  const server: Server = createServer((req, res) => {
    if (req.url === '/bundle.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' })
      res.end(bundle)
      return
    }
    res.writeHead(200, { 'content-type': 'text/html' })
    res.end('<!doctype html><meta charset="utf-8"><title>PetalDB test</title><script type="module" src="/bundle.js"></script>')
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () => new Promise(resolve => { server.closeAllConnections(); server.close(() => resolve()) })
  }
}

/** Starts Chromium with a fresh profile; `close` also removes the profile. */
export async function launchChromium (): Promise<{ context: BrowserContext, close(): Promise<void> }> {
  const profile = mkdtempSync(join(tmpdir(), 'petaldb-chromium-'))
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: CHROMIUM_FLAGS
  })
  return {
    context,
    close: async () => {
      await context.close()
      rmSync(profile, { recursive: true, force: true })
    }
  }
}

/**
 * Starts Chromium for tests that need several independent contexts (separate storage:
 * separate devices). WebRTC may use local addresses as they are (not mDNS names), which
 * loopback needs.
 */
export async function launchBrowser (): Promise<Browser> {
  return await chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: [...CHROMIUM_FLAGS, '--disable-features=WebRtcHideLocalIpsWithMdns']
  })
}
