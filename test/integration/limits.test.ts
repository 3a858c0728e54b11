/**
 * One test per relay limit: the offending connection is closed with the documented code,
 * the stored state is unchanged, and other connections keep working.
 */
import { randomUUID } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import * as Y from 'yjs'
import { connectWebSocket, type WebSocketConstructor } from '../../shared/transport/websocket.js'
import { parseDocId } from '../../shared/wire/doc-id.js'
import { NATIVE_PROTOCOL_VERSION, encodeNativeMessage } from '../../shared/wire/native-messages.js'
import { encodeAwarenessEntries } from '../../shared/wire/awareness.js'
import { encodeAwarenessMessage, encodeQueryAwareness, encodeSyncUpdate } from '../../shared/wire/y-messages.js'
import { SqliteStore } from '../../shared/storage/sqlite-store.js'
import { DEFAULT_LIMITS, WS_CLIENT_MAX_PAYLOAD, type Limits } from '../../shared/listen/limits.js'
import { startRelay, type Relay } from '../../server/relay.js'
import type { CommonRelayOptions } from '../../server/relay-options.js'
import { once, until } from '../helpers/events.js'
import { captureLog, type CapturedLog } from '../helpers/log-capture.js'
import { stockClient } from '../helpers/stock-client.js'
import { tempDir } from '../helpers/temp.js'

const root = tempDir()
let n = 0
let relay: Relay | null = null
let store: SqliteStore
let log: CapturedLog
afterEach(async () => { await relay?.close(); relay = null })

async function relayWith (limits: Partial<Limits>, extra: CommonRelayOptions = {}): Promise<Relay> {
  store = new SqliteStore(join(root, `limits-${n++}.db`))
  log = captureLog('info')
  relay = await startRelay({ port: 0, store, limits, logger: log.logger, ...extra })
  return relay
}

function raw (path: string, options: WebSocket.ClientOptions = {}): WebSocket {
  const ws = new WebSocket(relay!.url + path, options)
  ws.on('error', () => {})
  return ws
}
const closeOf = async (ws: WebSocket): Promise<{ code: number, reason: string }> => {
  const [code, reason] = await once<[number, Buffer]>(ws, 'close')
  return { code, reason: reason.toString() }
}
function textUpdate (text: string, doc = new Y.Doc()): Uint8Array {
  doc.getText('t').insert(0, text)
  return Y.encodeStateAsUpdate(doc)
}
/** A client's binary WebSocket frame (masked, with a zero mask) of a payload under 126 bytes. */
const maskedBinaryFrame = (payload: Uint8Array): Buffer => Buffer.concat([Buffer.from([0x82, 0x80 | payload.length, 0, 0, 0, 0]), Buffer.from(payload)])

/** Proves the relay still serves: a fresh client syncs. */
async function stillServing (): Promise<void> {
  const client = stockClient(relay!.url, `alive/${n++}`)
  await client.synced()
  client.destroy()
}

describe('relay limits', () => {
  it('documents per native connection (1008)', async () => {
    await relayWith({ maxDocsPerConnection: 2 })
    const link = await connectWebSocket(relay!.url, WebSocket as unknown as WebSocketConstructor)
    const closed = new Promise<{ code: number, reason: string }>(resolve => { link.onClose = (code, reason) => resolve({ code, reason }) })
    link.send(encodeNativeMessage({ type: 'hello', version: NATIVE_PROTOCOL_VERSION, peer: { peerId: randomUUID(), isRelay: false }, token: '' }))
    for (const id of ['a', 'b', 'c']) link.send(encodeNativeMessage({ type: 'open', docId: parseDocId(id), stateVector: new Uint8Array([0]) }))
    expect(await closed).toEqual({ code: 1008, reason: 'more than 2 documents open on one connection' })
    await stillServing()
  })

  it('connections per IP address (1013)', async () => {
    await relayWith({ maxConnectionsPerIp: 2 })
    const first = raw('/a')
    const second = raw('/b')
    await Promise.all([once(first, 'open'), once(second, 'open')])
    expect(await closeOf(raw('/c'))).toMatchObject({ code: 1013 })
    first.close()
    await once(first, 'close')
    await stillServing()
    second.close()
  })

  it('messages per second per connection: a burst is slowed down, a flood far above is closed (1008)', async () => {
    await relayWith({ maxMessagesPerSecond: 20 })
    const ws = raw('/rate')
    await once(ws, 'open')
    // Twelve seconds' worth in one write, read at once: far above the limit.
    const frames = Array.from({ length: 20 * 12 }, () => maskedBinaryFrame(encodeQueryAwareness()))
    ;(ws as unknown as { _socket: { write(data: Buffer): void } })._socket.write(Buffer.concat(frames))
    expect(await closeOf(ws)).toMatchObject({ code: 1008, reason: expect.stringMatching(/messages per second/) })
    await stillServing()
  })

  it('slows a sender over its message rate down instead of closing it', async () => {
    await relayWith({ maxMessagesPerSecond: 200 })
    const ws = raw('/burst')
    let answers = 0
    let closed = false
    ws.on('message', () => { answers++ })
    ws.on('close', () => { closed = true })
    await once(ws, 'open')
    const started = Date.now()
    // 1,000 messages in about half a second: four seconds of budget.
    for (let batch = 0; batch < 10; batch++) {
      for (let i = 0; i < 100; i++) ws.send(encodeQueryAwareness())
      await new Promise(resolve => setTimeout(resolve, 50))
    }
    await until('every query to be answered', cb => { ws.on('message', cb); return () => ws.off('message', cb) }, () => answers >= 1000 + 1, 20_000)
    expect(closed).toBe(false)
    // The budget allows 200 a second after a burst of 200: the last answers wait for it.
    expect(Date.now() - started).toBeGreaterThan(2500)
    ws.close()
  })

  it('lets a stock client send 5,000 transactions in a burst, and its reader gets them all', async () => {
    await relayWith({})
    const writer = stockClient(relay!.url, 'burst')
    const reader = stockClient(relay!.url, 'burst')
    await Promise.all([writer.synced(), reader.synced()])
    let closes = 0
    writer.provider.on('connection-close', () => { closes++ })
    for (let i = 0; i < 5000; i++) writer.text.insert(writer.text.length, String(i % 10))
    await reader.textIs(writer.text.toString(), 20_000)
    expect(closes).toBe(0)
    writer.destroy()
    reader.destroy()
  })

  it('bytes per second per connection: far above is closed (1008)', async () => {
    await relayWith({ maxBytesPerSecond: 4096 })
    const ws = raw('/bytes')
    await once(ws, 'open')
    // One message worth twelve seconds of the budget.
    ws.send(encodeAwarenessMessage(encodeAwarenessEntries([{ clientId: 1, clock: 1, state: { pad: 'x'.repeat(12 * 4096) } }])))
    expect(await closeOf(ws)).toMatchObject({ code: 1008, reason: expect.stringMatching(/bytes per second/) })
    await stillServing()
  })

  it('document size (1009), storing nothing of the update', async () => {
    await relayWith({ maxDocumentBytes: 2000 })
    const writer = stockClient(relay!.url, 'big')
    await writer.synced()
    writer.text.insert(0, 'small')
    const reader = stockClient(relay!.url, 'big')
    await reader.textIs('small')
    const before = JSON.stringify(await store.load(parseDocId('big')))
    const ws = raw('/big')
    await once(ws, 'open')
    ws.send(encodeSyncUpdate(textUpdate('x'.repeat(5000))))
    expect(await closeOf(ws)).toMatchObject({ code: 1009, reason: expect.stringMatching(/would exceed 2000 bytes/) })
    expect(JSON.stringify(await store.load(parseDocId('big')))).toBe(before)
    writer.text.insert(5, '!')
    await reader.textIs('small!')
    writer.destroy()
    reader.destroy()
  })

  it('sends a document at its size limit in a frame a client with that maxPayload accepts', async () => {
    const limit = 256 * 1024
    await relayWith({ maxDocumentBytes: limit, maxBytesPerSecond: 64 * 1024 * 1024 })
    const writer = stockClient(relay!.url, 'full')
    await writer.synced()
    // Many updates up to the limit: the stored parts, then the merged answer to a fresh client.
    try {
      for (let i = 0; writer.text.length < limit; i++) writer.text.insert(writer.text.length, `${i}:${'y'.repeat(200)}`)
    } catch {}
    const closed = new Promise<number>(resolve => writer.provider.on('connection-close', (event: { code: number } | null) => resolve(event?.code ?? 0)))
    expect(await closed).toBe(1009)
    writer.destroy()
    const ws = raw('/full', { maxPayload: limit + 1024 })
    const [frame] = await once<[Buffer]>(ws, 'message') // the relay's step 1
    expect(frame[0]).toBe(0)
    ws.send(encodeQueryAwareness())
    ws.send(new Uint8Array([0, 0, 1, 0])) // step 1 with an empty state vector: send me everything
    const answer = await new Promise<Buffer>(resolve => ws.on('message', (data: Buffer) => { if (data[0] === 0 && data[1] === 1) resolve(data) }))
    expect(answer.length).toBeLessThanOrEqual(limit + 1024)
    expect(answer.length).toBeGreaterThan(limit / 2)
    ws.close()
    // So with the default limit, a whole document fits in what a Node ws client accepts.
    expect(DEFAULT_LIMITS.maxDocumentBytes + 1024).toBeLessThan(WS_CLIENT_MAX_PAYLOAD)
  })

  it('bytes of updates waiting for dependencies, per document (1008)', async () => {
    await relayWith({ maxWaitingBytes: 1000 })
    const source = new Y.Doc()
    source.getText('t').insert(0, 'first')
    const sv = Y.encodeStateVector(source)
    source.getText('t').insert(5, 'y'.repeat(3000))
    // Only the second half: its dependency never arrives.
    const orphan = Y.encodeStateAsUpdate(source, sv)
    const ws = raw('/pending')
    await once(ws, 'open')
    ws.send(encodeSyncUpdate(orphan))
    expect(await closeOf(ws)).toMatchObject({ code: 1008, reason: expect.stringMatching(/missing dependencies/) })
    // What was taken stays (and is stored); further updates are refused before they are applied.
    const again = raw('/pending')
    await once(again, 'open')
    source.getText('t').insert(0, 'z')
    again.send(encodeSyncUpdate(Y.encodeStateAsUpdate(source, sv)))
    expect(await closeOf(again)).toMatchObject({ code: 1008 })
    expect((await store.load(parseDocId('pending')))!.updates).toHaveLength(1)
    // An update that fills the gap is still taken, and the waiting text integrates.
    const filler = raw('/pending')
    await once(filler, 'open')
    filler.send(encodeSyncUpdate(Y.encodeStateAsUpdate(source)))
    const reader = stockClient(relay!.url, 'pending')
    await reader.textIs(source.getText('t').toString())
    reader.destroy()
    filler.close()
    await stillServing()
  })

  it('awareness entries per document (1008)', async () => {
    await relayWith({ maxAwarenessEntries: 2 })
    const ws = raw('/crowd')
    await once(ws, 'open')
    ws.send(encodeAwarenessMessage(encodeAwarenessEntries([1, 2, 3].map(clientId => ({ clientId, clock: 1, state: { n: clientId } })))))
    expect(await closeOf(ws)).toMatchObject({ code: 1008, reason: expect.stringMatching(/awareness entries/) })
    await stillServing()
  })

  it('awareness state size (1008)', async () => {
    await relayWith({ maxAwarenessStateBytes: 100 })
    const ws = raw('/fat')
    await once(ws, 'open')
    ws.send(encodeAwarenessMessage(encodeAwarenessEntries([{ clientId: 1, clock: 1, state: { pad: 'x'.repeat(200) } }])))
    expect(await closeOf(ws)).toMatchObject({ code: 1008, reason: expect.stringMatching(/awareness state larger/) })
    await stillServing()
  })

  it('drops a slow reader instead of buffering without limit', async () => {
    await relayWith({ maxBufferedBytes: 64 * 1024 })
    const writer = stockClient(relay!.url, 'firehose')
    await writer.synced()
    const slow = raw('/firehose')
    await once(slow, 'open')
    // Stop reading: once the kernel's buffers are full, the relay's send buffer grows.
    ;(slow as unknown as { _socket: { pause(): void } })._socket.pause()
    const chunk = 'z'.repeat(16 * 1024)
    const fill = setInterval(() => writer.text.insert(0, chunk), 1)
    try {
      await log.waitFor('dropping a slow reader', undefined, 20_000)
    } finally {
      clearInterval(fill)
    }
    await stillServing()
    writer.destroy()
  })

  it('rejects browser origins outside the allow-list (HTTP 403)', async () => {
    await relayWith({}, { allowedOrigins: ['https://app.example'] })
    const refused = raw('/x', { origin: 'https://evil.example' })
    const [, response] = await once<[unknown, { statusCode: number }]>(refused, 'unexpected-response')
    expect(response.statusCode).toBe(403)
    const allowed = raw('/x', { origin: 'https://app.example' })
    await once(allowed, 'open')
    allowed.close()
  })

  it('serves wss:// with a TLS certificate', async () => {
    const key = join(root, 'key.pem')
    const cert = join(root, 'cert.pem')
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1'], { stdio: 'ignore' })
    await relayWith({}, { tls: { cert: readFileSync(cert), key: readFileSync(key) } })
    expect(relay!.url).toMatch(/^wss:\/\//)
    const ws = new WebSocket(`${relay!.url}/secure`, { rejectUnauthorized: false })
    const [frame] = await once<[Buffer]>(ws, 'message')
    expect(frame[0]).toBe(0) // the relay's sync step 1
    ws.close()
  })
})
