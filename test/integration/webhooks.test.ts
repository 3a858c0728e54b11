/**
 * Webhooks against a local HTTP receiver: one signed call per burst of changes (debounced
 * per document), retried after the receiver fails, and never in the way of writes (a
 * receiver that hangs does not delay acknowledgements); deliveries queued per receiver (a
 * few calls in flight, one queued call per document, retries held in the queue, a bound).
 * And the relay's hooks for an app embedding it: authenticate, load, change, store, delete.
 */
import { createHmac } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { startRelay, type Relay } from '../../server/relay.js'
import type { CommonRelayOptions } from '../../server/relay-options.js'
import { AuthError } from '../../shared/errors.js'
import { CloseCode } from '../../shared/wire/close-codes.js'
import type { ChangeEvent } from '../../server/hooks.js'
import { Webhooks, type WebhookOptions } from '../../server/webhooks.js'
import { Replica } from '../../client/replica.js'
import { MemoryStore } from '../../shared/storage/memory-store.js'
import '../../client/node.js' // the ws WebSocket for replicas on Node
import { until } from '../helpers/events.js'
import { captureLog } from '../helpers/log-capture.js'
import { stockClient, type StockClient } from '../helpers/stock-client.js'
import { tempDir } from '../helpers/temp.js'

const SECRET = 'webhook-signing-secret'
const root = tempDir()
let n = 0
const cleanups: Array<() => unknown> = []
afterEach(async () => { for (const cleanup of cleanups.splice(0).reverse()) await cleanup() })

interface Call { body: string, signature: string, at: number }

interface Receiver {
  url: string
  calls: Call[]
  changed: EventTarget
  /** Most calls it held unanswered at once. */
  peakOpen(): number
  /** Answers the calls it holds with `status`. */
  release(status: number): void
}

/** A receiver on loopback: `answer` decides each call's fate (a status, or 'hang'). */
async function receiver (answer: (call: Call, index: number) => number | 'hang'): Promise<Receiver> {
  const calls: Call[] = []
  const changed = new EventTarget()
  const hanging: ServerResponse[] = []
  let peak = 0
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = ''
    req.on('data', chunk => { body += String(chunk) })
    req.on('end', () => {
      const call = { body, signature: String(req.headers['x-petaldb-signature']), at: Date.now() }
      calls.push(call)
      const fate = answer(call, calls.length - 1)
      if (fate === 'hang') {
        hanging.push(res)
        res.on('close', () => hanging.splice(hanging.indexOf(res), 1))
        peak = Math.max(peak, hanging.length)
      } else {
        res.writeHead(fate).end()
      }
      changed.dispatchEvent(new Event('call'))
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  cleanups.push(() => new Promise(resolve => { for (const res of hanging) res.destroy(); server.closeAllConnections(); server.close(resolve) }))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    calls,
    changed,
    peakOpen: () => peak,
    release: status => { for (const res of [...hanging]) res.writeHead(status).end() }
  }
}

/** Webhooks on their own, without a relay: `changed(docId)` is what a relay calls after a durable change. */
function webhooks (options: Omit<WebhookOptions, 'secret' | 'logger'>, log = captureLog('warn')): Webhooks {
  const w = new Webhooks({ secret: SECRET, logger: log.logger, ...options })
  cleanups.push(() => w.close())
  return w
}

const bodyOf = (call: Call): { docId: string, updatedAt: string } => JSON.parse(call.body) as { docId: string, updatedAt: string }
const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

async function relay (options: CommonRelayOptions): Promise<Relay> {
  const r = await startRelay({ port: 0, dataDir: join(root, `data-${n++}`), logger: captureLog('warn').logger, ...options })
  cleanups.push(() => r.close())
  return r
}

function client (url: string, docId: string, params: Record<string, string> = {}): StockClient {
  const c = stockClient(url, docId, { params })
  cleanups.push(() => c.destroy())
  return c
}

const callsReach = (hook: Receiver, count: number, timeoutMs = 10_000): Promise<void> =>
  until(`${count} webhook call(s) (have ${hook.calls.length})`, cb => { hook.changed.addEventListener('call', cb); return () => hook.changed.removeEventListener('call', cb) }, () => hook.calls.length >= count, timeoutMs)

describe('webhooks', () => {
  it('calls once per burst of changes, with the document and time, signed with HMAC-SHA256 of the body', async () => {
    const hook = await receiver(() => 204)
    const r = await relay({ webhooks: { urls: [hook.url], secret: SECRET, debounceMs: 200 } })
    const writer = client(r.url, 'hooked/doc')
    await writer.synced()
    const started = Date.now()
    for (let i = 0; i < 20; i++) writer.text.insert(0, `${i} `)
    await callsReach(hook, 1)
    const [call] = hook.calls
    const body = JSON.parse(call!.body) as { docId: string, updatedAt: string }
    expect(body.docId).toBe('hooked/doc')
    expect(Date.parse(body.updatedAt)).toBeGreaterThanOrEqual(started - 1000)
    expect(call!.signature).toBe(`sha256=${createHmac('sha256', SECRET).update(call!.body).digest('hex')}`)
    expect(call!.at - started).toBeGreaterThanOrEqual(200) // it waited for the burst to end
    // A later change is a new call; the burst was one.
    writer.text.insert(0, 'later ')
    await callsReach(hook, 2)
    expect(hook.calls).toHaveLength(2)
  })

  it('retries a call the receiver failed, with backoff, until it succeeds', async () => {
    const hook = await receiver((_call, index) => index < 2 ? 503 : 200)
    const r = await relay({ webhooks: { urls: [hook.url], secret: SECRET, debounceMs: 10, retryBaseMs: 50 } })
    const writer = client(r.url, 'retried/doc')
    await writer.synced()
    writer.text.insert(0, 'change')
    await callsReach(hook, 3)
    const [first, second, third] = hook.calls
    expect(new Set(hook.calls.map(call => call.body)).size).toBe(1) // the same call, three times
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(50)
    expect(third!.at - second!.at).toBeGreaterThanOrEqual(100)
  })

  it('never holds up writes: while the receiver hangs on a call, every change is still acknowledged', async () => {
    const hook = await receiver(() => 'hang')
    const r = await relay({ webhooks: { urls: [hook.url], secret: SECRET, debounceMs: 1 } })
    const replica = new Replica({ store: new MemoryStore(), relays: [r.url] })
    cleanups.push(() => replica.close())
    const doc = await replica.open('slow-hook/doc')
    for (let i = 0; i < 50; i++) {
      doc.getText('t').insert(0, 'x')
      await replica.doc('slow-hook/doc').durable()
      if (i === 0) await callsReach(hook, 1) // the receiver is now holding a call open
    }
    expect(replica.doc('slow-hook/doc').pending).toBe(0)
    // One call hangs; the changes since wait as one more call for the document (once their debounce ends).
    let metrics = ''
    for (let tries = 0; tries < 40 && !metrics.includes('petaldb_webhook_deliveries{state="queued"} 1'); tries++) {
      if (tries > 0) await sleep(50)
      metrics = await (await fetch(`${r.url.replace('ws:', 'http:')}/metrics`)).text()
    }
    expect(metrics).toContain('petaldb_webhook_deliveries{state="in_flight"} 1')
    expect(metrics).toContain('petaldb_webhook_deliveries{state="queued"} 1')
  })
})

describe('webhook deliveries', () => {
  it('keeps a few calls in flight per receiver and one queued call per document, which carries its latest change', async () => {
    let hang = true
    const hook = await receiver(() => hang ? 'hang' : 204)
    const w = webhooks({ urls: [hook.url], debounceMs: 1, concurrency: 2 })
    const ids = Array.from({ length: 20 }, (_, i) => `queued/${i}`)
    for (const id of ids) w.changed(id)
    await callsReach(hook, 2)
    await sleep(100)
    expect(hook.calls).toHaveLength(2) // the other 18 wait: no connection each
    expect(w.deliveries).toEqual({ queued: 18, inFlight: 2 })
    const inFlight = hook.calls.map(call => bodyOf(call).docId)

    await sleep(5)
    const secondChangeAt = Date.now()
    for (const id of ids) w.changed(id)
    await sleep(50)
    // Queued documents took the later time in place; each document in flight queued one more call.
    expect(w.deliveries).toEqual({ queued: 20, inFlight: 2 })

    hang = false
    hook.release(204)
    await callsReach(hook, 22)
    await sleep(100)
    expect(hook.calls).toHaveLength(22)
    expect(hook.peakOpen()).toBe(2)
    const latest = new Map<string, number>()
    for (const call of hook.calls) {
      const { docId, updatedAt } = bodyOf(call)
      latest.set(docId, Math.max(latest.get(docId) ?? 0, Date.parse(updatedAt)))
    }
    expect([...latest.keys()].sort()).toEqual([...ids].sort())
    for (const time of latest.values()) expect(time).toBeGreaterThanOrEqual(secondChangeAt)
    // A document's calls reach the receiver in order: its second call came after its first ended.
    for (const id of inFlight) expect(hook.calls.filter(call => bodyOf(call).docId === id)).toHaveLength(2)
    expect(w.deliveries).toEqual({ queued: 0, inFlight: 0 })
  })

  it('holds a failed call in the queue for its retry, and a change meanwhile joins that retry', async () => {
    const hook = await receiver((_call, index) => index === 0 ? 503 : 204)
    const w = webhooks({ urls: [hook.url], debounceMs: 1, retryBaseMs: 300 })
    w.changed('retried/doc')
    await callsReach(hook, 1)
    await sleep(50)
    expect(w.deliveries).toEqual({ queued: 1, inFlight: 0 }) // waiting out its backoff
    const laterChangeAt = Date.now()
    w.changed('retried/doc')
    await callsReach(hook, 2)
    expect(hook.calls[1]!.at - hook.calls[0]!.at).toBeGreaterThanOrEqual(300) // the change did not cut the backoff short
    expect(Date.parse(bodyOf(hook.calls[1]!).updatedAt)).toBeGreaterThanOrEqual(laterChangeAt)
    await sleep(100)
    expect(hook.calls).toHaveLength(2) // the retry and the change were one call
  })

  it('drops changes to documents beyond the queue bound, and logs it', async () => {
    const hook = await receiver(() => 'hang')
    const log = captureLog('warn')
    const w = webhooks({ urls: [hook.url], debounceMs: 1, concurrency: 1, maxQueued: 3 }, log)
    for (let i = 0; i < 10; i++) w.changed(`bounded/${i}`)
    await callsReach(hook, 1)
    await sleep(50)
    expect(w.deliveries).toEqual({ queued: 3, inFlight: 1 })
    const full = await log.waitFor('webhook queue full: the receiver will not hear of changes to further documents until it catches up')
    expect(full).toMatchObject({ webhook: hook.url, maxQueued: 3 })
  })
})

describe('relay hooks', () => {
  it('lets the app authenticate tokens and hear of loads, changes, commits and deletions', async () => {
    const events: string[] = []
    const changes: ChangeEvent[] = []
    const r = await relay({
      hooks: {
        authenticate: token => {
          if (token === 'let-me-in') return { sub: 'app-user', read: ['*'], write: ['hooks/*'], expiresAt: null }
          throw new AuthError(CloseCode.unauthorized, 'the app does not know this token')
        },
        load: ({ docId }) => events.push(`load ${docId}`),
        change: event => changes.push(event),
        store: ({ updates }) => { if (updates > 0) events.push('store') },
        delete: ({ docId }) => events.push(`delete ${docId}`)
      }
    })
    const refused = client(r.url, 'hooks/doc', { token: 'wrong' })
    const closed = new Promise<number>(resolve => refused.provider.on('connection-close', (event: { code: number } | null) => { if (event !== null) resolve(event.code) }))
    expect(await closed).toBe(CloseCode.unauthorized)

    const writer = client(r.url, 'hooks/doc', { token: 'let-me-in' })
    await writer.synced()
    writer.text.insert(0, 'hello')
    await until('the change hook', cb => { const t = setInterval(cb, 5); return () => clearInterval(t) }, () => changes.length > 0)
    expect(changes[0]).toMatchObject({ docId: 'hooks/doc', source: 'client' })
    const doc = new Y.Doc()
    Y.applyUpdate(doc, changes[0]!.update)
    expect(doc.getText('t').toString()).toBe('hello')

    const base = r.url.replace('ws:', 'http:')
    expect((await fetch(`${base}/v1/docs/hooks/doc`, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401)
    expect((await fetch(`${base}/v1/docs/hooks/doc`, { method: 'DELETE', headers: { authorization: 'Bearer let-me-in' } })).status).toBe(204)
    expect(events[0]).toBe('load hooks/doc')
    expect(events).toContain('store')
    expect(events.at(-1)).toBe('delete hooks/doc')
  })
})
