/**
 * The HTTP document API of one relay, over real loopback HTTP: reading a document as a Yjs
 * update and as JSON, writing one (200 only once durable, live clients get it at once),
 * listing, deleting with erasure from the relay's files, and every refusal: bad token, no
 * access, read-only write, malformed body, unknown document, oversize body.
 */
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { startRelay, type Relay } from '../../server/relay.js'
import { Replica } from '../../client/replica.js'
import { SqliteStore } from '../../client/node.js'
import { CloseCode } from '../../shared/wire/close-codes.js'
import { until } from '../helpers/events.js'
import { captureLog } from '../helpers/log-capture.js'
import { stockClient, type StockClient } from '../helpers/stock-client.js'
import { tempDir } from '../helpers/temp.js'
import { onDisk } from '../helpers/on-disk.js'
import { signToken } from '../helpers/tokens.js'

const SECRET = 'http-api-test-secret-0123456789'
const root = tempDir()
const dataDir = join(root, 'data')
let relay: Relay
let base: string
let admin: string
const clients: StockClient[] = []
afterEach(() => { for (const c of clients.splice(0)) c.destroy() })

beforeAll(async () => {
  relay = await startRelay({ port: 0, dataDir, authKeys: new Map([['', SECRET]]), limits: { maxFrameBytes: 64 * 1024 }, logger: captureLog('warn').logger })
  base = relay.url.replace('ws:', 'http:')
  admin = await signToken(SECRET, { write: ['*'] })
})
afterAll(() => relay.close())

const auth = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` })

/** A stock client of `docId` with a token that may write everything. */
function client (docId: string): StockClient {
  const c = stockClient(relay.url, docId, { params: { token: admin } })
  clients.push(c)
  return c
}

function updateOf (build: (doc: Y.Doc) => void): Uint8Array<ArrayBuffer> {
  const doc = new Y.Doc()
  build(doc)
  return new Uint8Array(Y.encodeStateAsUpdate(doc))
}

async function post (docId: string, body: Uint8Array<ArrayBuffer>, token = admin): Promise<Response> {
  return await fetch(`${base}/v1/docs/${encodeURIComponent(docId)}`, { method: 'POST', headers: { ...auth(token), 'content-type': 'application/octet-stream' }, body })
}


describe('the HTTP document API', () => {
  it('reads a document as a Yjs update and as JSON, every root type rendered by what it holds', async () => {
    const writer = client('api/read')
    await writer.synced()
    writer.doc.transact(() => {
      writer.doc.getText('body').insert(0, 'hello')
      writer.doc.getMap('meta').set('title', 'Notes')
      writer.doc.getArray('tags').push(['a', 'b'])
      const paragraph = new Y.XmlElement('p')
      paragraph.insert(0, [new Y.XmlText('para')])
      writer.doc.getXmlFragment('prose').insert(0, [paragraph])
    })
    await until('the relay to hold the edit', cb => { const t = setInterval(cb, 5); return () => clearInterval(t) }, () => (relay.registry.peek('api/read' as never)?.stats.bytes ?? 0) > 0)

    const binary = await fetch(`${base}/v1/docs/api%2Fread`, { headers: auth(admin) })
    expect(binary.status).toBe(200)
    expect(binary.headers.get('content-type')).toBe('application/octet-stream')
    const doc = new Y.Doc()
    Y.applyUpdate(doc, new Uint8Array(await binary.arrayBuffer()))
    expect(doc.getText('body').toString()).toBe('hello')

    const json = await fetch(`${base}/v1/docs/api/read?format=json`, { headers: auth(admin) })
    expect(json.status).toBe(200)
    expect(await json.json()).toEqual({ body: 'hello', meta: { title: 'Notes' }, tags: ['a', 'b'], prose: '<p>para</p>' })
  })

  it('acknowledges a POST once it is durable, and live clients get it at once', async () => {
    const live = client('api/write')
    await live.synced()
    const response = await post('api/write', updateOf(doc => doc.getText('t').insert(0, 'from http')))
    expect(response.status).toBe(200)
    await live.textIs('from http')
    // Durable: a second store on the relay's database (a reader of committed data) has it.
    const reader = new SqliteStore(join(dataDir, 'relay.db'))
    try {
      const stored = await reader.load('api/write' as never)
      const doc = new Y.Doc()
      for (const part of [stored?.snapshot ?? null, ...stored?.updates ?? []]) if (part !== null) Y.applyUpdate(doc, part)
      expect(doc.getText('t').toString()).toBe('from http')
    } finally {
      await reader.close()
    }
  })

  it('refuses with a clear status: bad token, no access, read-only write, malformed body, unknown document, oversize body', async () => {
    await post('api/refusals', updateOf(doc => doc.getText('t').insert(0, 'x')))
    const readOnly = await signToken(SECRET, { read: ['api/*'] })
    const elsewhere = await signToken(SECRET, { write: ['other/*'] })
    const cases: Array<[string, Promise<Response>, number, RegExp]> = [
      ['no token', fetch(`${base}/v1/docs/api/refusals`), 401, /token is required/],
      ['forged token', fetch(`${base}/v1/docs/api/refusals`, { headers: auth(await signToken('another-secret-0123456789')) }), 401, /invalid token/],
      ['expired token', fetch(`${base}/v1/docs/api/refusals`, { headers: auth(await signToken(SECRET, { write: ['*'], expiresIn: -10 })) }), 401, /expired/],
      ['no access', fetch(`${base}/v1/docs/api/refusals`, { headers: auth(elsewhere) }), 403, /does not allow reading/],
      ['read-only write', post('api/refusals', updateOf(doc => doc.getText('t').insert(0, 'y')), readOnly), 403, /does not allow writing/],
      ['malformed body', post('api/refusals', new Uint8Array([1, 2, 3, 250, 250])), 400, /malformed Yjs update/],
      ['empty body', post('api/refusals', new Uint8Array(0)), 400, /Yjs v1 update/],
      ['unknown document', fetch(`${base}/v1/docs/api/nothing-here`, { headers: auth(admin) }), 404, /no document api\/nothing-here/],
      ['invalid id', fetch(`${base}/v1/docs/a%2F%2Fb`, { headers: auth(admin) }), 400, /document id/],
      ['oversize body', post('api/refusals', new Uint8Array(65 * 1024)), 413, /larger than 65536 bytes/],
      ['unknown format', fetch(`${base}/v1/docs/api/refusals?format=xml`, { headers: auth(admin) }), 400, /unknown format/],
      ['listing without a token', fetch(`${base}/v1/docs?prefix=api/`), 401, /token is required/],
      ['delete with a read-only token', fetch(`${base}/v1/docs/api/refusals`, { method: 'DELETE', headers: auth(readOnly) }), 403, /does not allow writing/],
      ['delete without a token', fetch(`${base}/v1/docs/api/refusals`, { method: 'DELETE' }), 401, /token is required/],
      ['delete of an unknown document', fetch(`${base}/v1/docs/api/nothing-here`, { method: 'DELETE', headers: auth(admin) }), 404, /no document/],
      ['an unknown method', fetch(`${base}/v1/docs/api/refusals`, { method: 'PUT', headers: auth(admin) }), 405, /not allowed/]
    ]
    for (const [what, pending, status, reason] of cases) {
      const response = await pending
      expect({ what, status: response.status }).toEqual({ what, status })
      expect((await response.json() as { error: string }).error).toMatch(reason)
    }
    // Nothing refused was stored.
    const json = await (await fetch(`${base}/v1/docs/api/refusals?format=json`, { headers: auth(admin) })).json()
    expect(json).toEqual({ t: 'x' })
  })

  it('lets pages of other origins call it (CORS), tokens in the Authorization header', async () => {
    const preflight = await fetch(`${base}/v1/docs/api/cors`, { method: 'OPTIONS', headers: { origin: 'http://app.example', 'access-control-request-method': 'DELETE', 'access-control-request-headers': 'authorization' } })
    expect(preflight.status).toBe(204)
    expect(preflight.headers.get('access-control-allow-origin')).toBe('http://app.example')
    expect(preflight.headers.get('access-control-allow-methods')).toContain('DELETE')
    expect(preflight.headers.get('access-control-allow-headers')).toContain('authorization')
    const read = await fetch(`${base}/v1/docs/api/cors`, { headers: { origin: 'http://app.example', ...auth(admin) } })
    expect(read.status).toBe(404)
    expect(read.headers.get('access-control-allow-origin')).toBe('http://app.example')
  })

  it('lists the documents a token may read, by id, a page at a time', async () => {
    for (const id of ['list/c', 'list/a', 'list/b', 'list/secret/1']) await post(id, updateOf(doc => doc.getText('t').insert(0, id)))
    const reader = await signToken(SECRET, { read: ['list/a', 'list/b', 'list/c'] })
    const page = async (query: string, token = reader): Promise<{ docs: Array<{ id: string, bytes: number, updatedAt: string }>, next: string | null }> =>
      await (await fetch(`${base}/v1/docs?${query}`, { headers: auth(token) })).json() as never
    const first = await page('prefix=list/&limit=2')
    expect(first.docs.map(doc => doc.id)).toEqual(['list/a', 'list/b'])
    expect(first.next).toBe('list/b')
    expect(first.docs[0]!.bytes).toBeGreaterThan(0)
    expect(Date.now() - Date.parse(first.docs[0]!.updatedAt)).toBeLessThan(60_000)
    const second = await page(`prefix=list/&limit=2&after=${first.next}`)
    expect(second).toEqual({ docs: [expect.objectContaining({ id: 'list/c' })], next: null })
    expect((await page('prefix=list/', admin)).docs.map(doc => doc.id)).toEqual(['list/a', 'list/b', 'list/c', 'list/secret/1'])
    expect((await fetch(`${base}/v1/docs?limit=0`, { headers: auth(admin) })).status).toBe(400)
  })

  it('deletes a document: live clients are closed with 4410, a replica drops it, the content is gone from the relay\'s files, and it stays deleted', async () => {
    const marker = 'MARKER-erase-me-7f3a9c'
    const live = client('api/delete')
    await live.synced()
    live.text.insert(0, marker)
    const closed = new Promise<number>(resolve => live.provider.on('connection-close', (event: { code: number } | null) => { if (event !== null) resolve(event.code) }))
    await until('the relay to store the marker', cb => { const t = setInterval(cb, 5); return () => clearInterval(t) }, () => onDisk(dataDir, marker))

    const response = await fetch(`${base}/v1/docs/api/delete`, { method: 'DELETE', headers: auth(admin) })
    expect(response.status).toBe(204)
    expect(await closed).toBe(CloseCode.deleted)
    expect(onDisk(dataDir, marker)).toBe(false)
    expect((await fetch(`${base}/v1/docs/api/delete`, { headers: auth(admin) })).status).toBe(404)
    expect((await fetch(`${base}/v1/docs/api/delete`, { method: 'DELETE', headers: auth(admin) })).status).toBe(404)
    const again = await post('api/delete', updateOf(doc => doc.getText('t').insert(0, 'back?')))
    expect(again.status).toBe(410)

    // A replica that still holds a copy learns it when it opens the document, and does not upload it again.
    const store = join(root, 'replica.db')
    const replica = new Replica({ store: new SqliteStore(store), token: admin })
    ;(await replica.open('api/delete')).getText('t').insert(0, 'old copy') // made offline, before it learns
    await replica.close()
    const online = new Replica({ store: new SqliteStore(store), relays: [relay.url], token: admin })
    try {
      const deleted = new Promise<string>(resolve => online.on('deleted', ({ docId }) => resolve(docId)))
      const handle = online.doc('api/delete')
      expect(await deleted).toBe('api/delete')
      expect(handle.status).toBe('deleted')
      expect(await online.list('api/')).toEqual([])
      handle.ydoc.getText('t').insert(0, 'after') // neither stored nor sent
    } finally {
      await online.close()
    }
    expect((await fetch(`${base}/v1/docs/api/delete`, { headers: auth(admin) })).status).toBe(404)
    expect(onDisk(dataDir, 'old copy')).toBe(false)
  })
})
