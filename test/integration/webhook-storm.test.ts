/**
 * A webhook storm: one client changes hundreds of documents in a few seconds while the
 * webhook receiver hangs. The relay runs from the built CLI under a low open-file limit
 * (`ulimit -n`), where a call per document at once would use up its file descriptors and it
 * could no longer accept connections. Its deliveries must stay bounded (open descriptors
 * counted in /proc), `/healthz` and honest clients must be served meanwhile, and once the
 * receiver answers again every changed document must be delivered with its latest change.
 */
import { writeFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { WEBHOOK_CONCURRENCY } from '../../server/webhooks.js'
import { until } from '../helpers/events.js'
import { CLI_PATH, healthzMs, openFds, startRelayProcess } from '../helpers/relay-process.js'
import { stockClient } from '../helpers/stock-client.js'
import { tempDir } from '../helpers/temp.js'

/** Far above what the relay needs (about 30), far below one descriptor per changed document. */
const FD_LIMIT = 256
const DOCS = 600
/** Concurrent POSTs of the writer (each on its own kept-alive connection). */
const WRITERS = 8

const root = tempDir()
const cleanups: Array<() => unknown> = []
afterEach(async () => { for (const cleanup of cleanups.splice(0).reverse()) await cleanup() })

/** A receiver that holds every call unanswered until `recover()`, then answers 204 (held calls included). */
async function slowReceiver (): Promise<{ url: string, latest: Map<string, number>, peakConnections(): number, recover(): void, changed: EventTarget }> {
  const latest = new Map<string, number>()
  const changed = new EventTarget()
  const held: ServerResponse[] = []
  let recovered = false
  let open = 0
  let peak = 0
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = ''
    req.on('data', chunk => { body += String(chunk) })
    req.on('end', () => {
      const { docId, updatedAt } = JSON.parse(body) as { docId: string, updatedAt: string }
      const answer = (): void => {
        latest.set(docId, Math.max(latest.get(docId) ?? 0, Date.parse(updatedAt)))
        res.writeHead(204).end()
        changed.dispatchEvent(new Event('call'))
      }
      if (recovered) answer()
      else held.push(Object.assign(res, { answer }))
    })
  })
  server.on('connection', socket => {
    peak = Math.max(peak, ++open)
    socket.on('close', () => open--)
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  cleanups.push(() => new Promise(resolve => { server.closeAllConnections(); server.close(resolve) }))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    latest,
    changed,
    peakConnections: () => peak,
    recover: () => {
      recovered = true
      for (const res of held.splice(0)) (res as ServerResponse & { answer: () => void }).answer()
    }
  }
}

/** A small Yjs update of its own for each call (a new client inserting text). */
function anUpdate (text: string): Uint8Array<ArrayBuffer> {
  const doc = new Y.Doc()
  doc.getText('t').insert(0, text)
  return new Uint8Array(Y.encodeStateAsUpdate(doc))
}

/** POSTs an update to every document, `WRITERS` at a time; returns when each POST was sent. */
async function changeAll (base: string, ids: string[], round: number): Promise<Map<string, number>> {
  const sentAt = new Map<string, number>()
  let next = 0
  await Promise.all(Array.from({ length: WRITERS }, async () => {
    while (next < ids.length) {
      const id = ids[next++]!
      sentAt.set(id, Date.now())
      const response = await fetch(`${base}/v1/docs/${id}`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: anUpdate(`${round}`), signal: AbortSignal.timeout(10_000) })
      expect(response.status).toBe(200)
    }
  }))
  return sentAt
}

describe('webhook storm', () => {
  it('keeps deliveries to a hanging receiver bounded under a low open-file limit, serves /healthz and clients meanwhile, and delivers every change once it recovers', async () => {
    const hook = await slowReceiver()
    const secretFile = join(root, 'webhook-secret')
    writeFileSync(secretFile, 'storm-secret\n')
    const relay = await startRelayProcess(join(root, 'data'), ['--webhook', hook.url, '--webhook-secret-file', secretFile, '--webhook-debounce-ms', '50'], 0, CLI_PATH, { fdLimit: FD_LIMIT })
    cleanups.push(() => relay.stop('SIGKILL'))
    const base = relay.url.replace('ws:', 'http:')
    const pid = relay.child.pid!
    expect(await healthzMs(base, 5000)).toBeLessThan(1000)
    const baselineFds = openFds(pid)

    let peakFds = baselineFds
    const sampler = setInterval(() => { peakFds = Math.max(peakFds, openFds(pid)) }, 10)
    const healthz: number[] = []
    let probing = true
    const prober = (async () => {
      while (probing) {
        healthz.push(await healthzMs(base, 5000))
        await new Promise(resolve => setTimeout(resolve, 100))
      }
    })()
    cleanups.push(() => { clearInterval(sampler); probing = false })

    const ids = Array.from({ length: DOCS }, (_, i) => `storm/${i}`)
    await changeAll(base, ids, 1)
    await until('the first calls to reach the receiver', cb => { const t = setInterval(cb, 20); return () => clearInterval(t) }, () => hook.peakConnections() > 0)
    // While those calls hang, the documents change again, and an honest client edits and syncs.
    const [lastChangeAt] = await Promise.all([
      changeAll(base, ids, 2),
      (async () => {
        const writer = stockClient(relay.url, 'honest/doc')
        const reader = stockClient(relay.url, 'honest/doc')
        cleanups.push(() => { writer.destroy(); reader.destroy() })
        await writer.synced()
        writer.text.insert(0, 'still served')
        await reader.textIs('still served', 5000)
      })()
    ])
    await new Promise(resolve => setTimeout(resolve, 500)) // the relay works through the queue's head meanwhile
    probing = false
    await prober
    clearInterval(sampler)

    // The pool's connections, and one more if a call timed out (after 10 s, on a slow machine)
    // and the receiver had yet to see its connection close when the retry's opened.
    expect(hook.peakConnections()).toBeLessThanOrEqual(WEBHOOK_CONCURRENCY + 1)
    // The writer's connections, the probe's, the clients' and the webhook pool: a few dozen at most.
    expect(peakFds - baselineFds).toBeLessThan(40)
    expect(healthz.length).toBeGreaterThan(5)
    expect(Math.max(...healthz)).toBeLessThan(1000)

    hook.recover()
    await until(`every document's latest change delivered (${hook.latest.size} of ${DOCS} heard of)`,
      cb => { hook.changed.addEventListener('call', cb); return () => hook.changed.removeEventListener('call', cb) },
      () => ids.every(id => (hook.latest.get(id) ?? 0) >= lastChangeAt.get(id)!), 20_000)
    expect(relay.logs.filter(entry => (entry.level as number) >= 50)).toEqual([]) // nothing given up or dropped
  }, 60_000)
})
