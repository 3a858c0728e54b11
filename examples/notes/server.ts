/**
 * The notes demo's server: a PetalDB relay on its embedded SQLite storage, and an HTTP
 * server for the page, built by esbuild at start (bundle.ts).
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Logger } from 'pino'
import { startRelay, type Relay } from '../../server/relay.js'
import { buildShell } from './bundle.js'

/** Options of {@link startDemo}. */
export interface DemoOptions {
  /** Interface both servers listen on. Default `127.0.0.1` (a secure context, which service workers need). */
  host?: string
  /** Port of the page; 0 picks a free one. Default 4380. */
  port?: number
  /** Port of the relay; 0 picks a free one. Default 4381. */
  relayPort?: number
  /** The relay's data directory. Default `./petal-demo`. */
  dataDir?: string
  /** The relay's logger (default: the relay's own). */
  logger?: Logger
}

/** A running demo. */
export interface Demo {
  /** The page's URL. */
  url: string
  relay: Relay
  /** Stops the page server and the relay. */
  close(): Promise<void>
}

/** Starts the relay, builds the page and serves it; resolves once both listen. */
export async function startDemo (options: DemoOptions = {}): Promise<Demo> {
  const host = options.host ?? '127.0.0.1'
  const relay = await startRelay({
    host,
    port: options.relayPort ?? 4381,
    dataDir: options.dataDir ?? './petal-demo',
    ...(options.logger === undefined ? {} : { logger: options.logger })
  })
  try {
    const { files } = await buildShell(relay.url)
    const server = createServer((req, res) => {
      const file = req.method === 'GET' || req.method === 'HEAD' ? files.get(new URL(req.url ?? '/', 'http://x').pathname) : undefined
      if (file === undefined) {
        res.writeHead(404, { 'content-type': 'text/plain' })
        res.end('not found\n')
        return
      }
      // no-cache: the service worker decides what is used offline, not the HTTP cache.
      res.writeHead(200, { 'content-type': file.type, 'cache-control': 'no-cache' })
      res.end(req.method === 'HEAD' ? undefined : file.body)
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(options.port ?? 4380, host, resolve)
    })
    const { port } = server.address() as AddressInfo
    return {
      url: `http://${host}:${port}/`,
      relay,
      close: async () => {
        await new Promise<void>(resolve => { server.closeAllConnections(); server.close(() => resolve()) })
        await relay.close()
      }
    }
  } catch (error) {
    await relay.close()
    throw error
  }
}
