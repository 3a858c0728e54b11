/**
 * Stock y-websocket v3 providers against an in-process relay over real loopback sockets.
 */
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { startRelay, type Relay } from '../../server/relay.js'
import { once, until } from '../helpers/events.js'
import { captureLog } from '../helpers/log-capture.js'
import { stockClient, type StockClient } from '../helpers/stock-client.js'
import { tempDir } from '../helpers/temp.js'

let relay: Relay
const clients: StockClient[] = []
const client = (docId: string, connect = true): StockClient => {
  const c = stockClient(relay.url, docId, { connect })
  clients.push(c)
  return c
}

beforeAll(async () => {
  relay = await startRelay({ port: 0, dataDir: join(tempDir(), 'data'), logger: captureLog('warn').logger })
})
afterEach(() => { for (const c of clients.splice(0)) c.destroy() })
afterAll(() => relay.close())

describe('relay with stock y-websocket clients', () => {
  it('makes two clients converge, both ways', async () => {
    const a = client('converge')
    const b = client('converge')
    await Promise.all([a.synced(), b.synced()])
    a.text.insert(0, 'hello ')
    await b.textIs('hello ')
    b.text.insert(6, 'world')
    await a.textIs('hello world')
  })

  it('gives a late joiner the full state', async () => {
    const a = client('late')
    await a.synced()
    for (let i = 0; i < 50; i++) a.text.insert(a.text.length, `${i},`)
    const expected = a.text.toString()
    const b = client('late')
    await b.synced()
    expect(b.text.toString()).toBe(expected)
  })

  it('merges edits a client made before connecting', async () => {
    const a = client('offline-first')
    const witness = client('offline-first')
    await Promise.all([a.synced(), witness.synced()])
    a.text.insert(0, 'server side')
    await witness.textIs('server side') // so the relay has it
    const b = client('offline-first', false)
    b.text.insert(0, 'offline ')
    b.provider.connect()
    await b.synced()
    const merged = b.text.toString()
    expect(merged).toContain('offline ')
    expect(merged).toContain('server side')
    await a.textIs(merged)
  })

  it('keeps documents isolated', async () => {
    const a = client('iso-1')
    const b = client('iso-2')
    const a2 = client('iso-1')
    await Promise.all([a.synced(), b.synced(), a2.synced()])
    a.text.insert(0, 'only in one')
    await a2.textIs('only in one')
    b.text.insert(0, 'only in two')
    await a2.textIs('only in one')
    const late = client('iso-2')
    await late.synced()
    expect(late.text.toString()).toBe('only in two')
    expect(a.text.toString()).toBe('only in one')
  })

  it('passes awareness on and removes a client\'s entry when its connection drops', async () => {
    const a = client('presence')
    const b = client('presence')
    await Promise.all([a.synced(), b.synced()])
    a.provider.awareness.setLocalStateField('user', { name: 'ann' })
    const aId = a.doc.clientID
    const seenByB = (): unknown => b.provider.awareness.getStates().get(aId)
    const onAwareness = (cb: () => void): () => void => { b.provider.awareness.on('change', cb); return () => b.provider.awareness.off('change', cb) }
    await until('b to see a', onAwareness, () => seenByB() !== undefined)
    expect(seenByB()).toEqual({ user: { name: 'ann' } })
    // Cut a's socket without letting the client say goodbye: the relay must remove the entry.
    a.provider.shouldConnect = false
    ;(a.provider.ws as unknown as WebSocket).terminate()
    await until('b to see a leave', onAwareness, () => seenByB() === undefined)
  })

  it('answers query-awareness with the known states', async () => {
    const a = client('query')
    a.provider.awareness.setLocalStateField('cursor', 3)
    await a.synced()
    const raw = new WebSocket(`${relay.url}/query`)
    const frames: Uint8Array[] = []
    raw.on('message', data => frames.push(new Uint8Array(data as Buffer)))
    await once(raw, 'open')
    await until('a\'s awareness to reach the relay', cb => { raw.on('message', cb); return () => raw.off('message', cb) },
      () => frames.some(f => f[0] === 1))
    frames.length = 0
    raw.send(new Uint8Array([3]))
    await until('an awareness answer', cb => { raw.on('message', cb); return () => raw.off('message', cb) }, () => frames.some(f => f[0] === 1))
    const answer = Buffer.from(frames.find(f => f[0] === 1)!).toString('latin1')
    expect(answer).toContain('"cursor":3')
    raw.close()
  })

  it('closes a connection with a bad document id, with a reason, and keeps serving', async () => {
    for (const path of ['/..%2Fetc', '/a//b', `/${'x'.repeat(300)}`, '/%ZZ']) {
      const raw = new WebSocket(relay.url + path)
      const [code, reason] = await once<[number, Buffer]>(raw, 'close')
      expect(code).toBe(4400)
      expect(reason.toString()).toMatch(/document id/)
    }
    const ok = client('still-fine')
    await ok.synced()
  })

  it('answers GET /healthz with documents and client connections', async () => {
    const a = client('health')
    await a.synced()
    const res = await fetch(relay.url.replace('ws:', 'http:') + '/healthz')
    expect(res.status).toBe(200)
    const body = await res.json() as { status: string, documents: number, clients: number, relayLinks: number }
    expect(body.status).toBe('ok')
    expect(body.documents).toBeGreaterThanOrEqual(1)
    expect(body.clients).toBeGreaterThanOrEqual(1)
    expect(body.relayLinks).toBe(0)
  })
})
