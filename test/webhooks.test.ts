/**
 * Webhooks against a local HTTP receiver: one signed call per burst of changes (debounced
 * per document), retried after the receiver fails, and never in the way of writes (a
 * receiver that hangs does not delay acknowledgements). And the relay's hooks for an app
 * embedding it: authenticate, load, change, store, delete.
 */
import { createHmac } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { startRelay, type Relay, type RelayOptions } from '../server/relay.js'
import { AuthError } from '../shared/errors.js'
import { CloseCode } from '../shared/wire/close-codes.js'
import type { ChangeEvent } from '../server/hooks.js'
import { Replica } from '../client/replica.js'
import { MemoryStore } from '../shared/storage/memory-store.js'
import '../client/node.js' // the ws WebSocket for replicas on Node
import { until } from './helpers/events.js'
import { captureLog } from './helpers/log-capture.js'
import { stockClient, type StockClient } from './helpers/stock-client.js'
import { tempDir } from './helpers/temp.js'

const SECRET = 'webhook-signing-secret'
const root = tempDir()
let n = 0
const cleanups: Array<() => unknown> = []
afterEach(async () => { for (const cleanup of cleanups.splice(0).reverse()) await cleanup() })

interface Call { body: string, signature: string, at: number }

/** A receiver on loopback: `answer` decides each call's fate (a status, or 'hang'). */
async function receiver (answer: (call: Call, index: number) => number | 'hang'): Promise<{ url: string, calls: Call[], changed: EventTarget }> {
  const calls: Call[] = []
  const changed = new EventTarget()
  const hanging: ServerResponse[] = []
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = ''
    req.on('data', chunk => { body += String(chunk) })
    req.on('end', () => {
      const call = { body, signature: String(req.headers['x-petaldb-signature']), at: Date.now() }
      calls.push(call)
      const fate = answer(call, calls.length - 1)
      changed.dispatchEvent(new Event('call'))
      if (fate === 'hang') hanging.push(res)
      else res.writeHead(fate).end()
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  cleanups.push(() => new Promise(resolve => { for (const res of hanging) res.destroy(); server.closeAllConnections(); server.close(resolve) }))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, calls, changed }
}

async function relay (options: Partial<RelayOptions>): Promise<Relay> {
  const r = await startRelay({ port: 0, dataDir: join(root, `data-${n++}`), logger: captureLog('warn').logger, ...options })
  cleanups.push(() => r.close())
  return r
}

function client (url: string, docId: string, params: Record<string, string> = {}): StockClient {
  const c = stockClient(url, docId, { params })
  cleanups.push(() => c.destroy())
  return c
}

const callsReach = (hook: { calls: Call[], changed: EventTarget }, count: number, timeoutMs = 10_000): Promise<void> =>
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
      await replica.durable('slow-hook/doc')
      if (i === 0) await callsReach(hook, 1) // the receiver is now holding a call open
    }
    expect(replica.pending('slow-hook/doc')).toBe(0)
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
