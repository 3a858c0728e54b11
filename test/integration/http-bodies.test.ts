/**
 * HTTP request bodies cannot hold a relay's sockets or memory: a body must keep arriving at
 * `minBodyBytesPerSecond`, counted over each request timeout, or its socket is closed; the
 * bytes of bodies held at once are bounded per address (429 beyond) and in all (503 beyond),
 * and freed when a body ends or its socket closes. Honest uploads, slow but steady ones too,
 * go through. Real sockets on loopback, from several local addresses.
 */
import { request } from 'node:http'
import { connect, type Socket } from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { startRelay, type Relay } from '../../server/relay.js'
import { captureLog } from '../helpers/log-capture.js'
import { tempDir } from '../helpers/temp.js'

const KiB = 1024
const MiB = 1024 * KiB
const root = tempDir()

/** A POST on a raw socket: its headers declare `declared` body bytes, of which the first `sent` go at once. */
interface RawPost {
  socket: Socket
  /** The status of the relay's answer, or null if the socket closed without one. */
  status: Promise<number | null>
  /** When the socket closed (`Date.now()`). */
  closedAt: Promise<number>
}

function rawPost (port: number, docId: string, declared: number, sent: number, localAddress = '127.0.0.1'): RawPost {
  const socket = connect({ port, host: '127.0.0.1', localAddress })
  socket.on('error', () => {})
  socket.write(`POST /v1/docs/${docId} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${declared}\r\n\r\n`)
  if (sent > 0) socket.write(Buffer.alloc(sent))
  let received = ''
  const status = new Promise<number | null>(resolve => {
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1')
      const match = /^HTTP\/1\.1 (\d{3})/.exec(received)
      if (match !== null) resolve(Number(match[1]))
    })
    socket.once('close', () => resolve(null))
  })
  const closedAt = new Promise<number>(resolve => socket.once('close', () => resolve(Date.now())))
  return { socket, status, closedAt }
}

/** A POST from `localAddress` with node:http: its status and answer. */
function postFrom (port: number, docId: string, body: Uint8Array, localAddress: string): Promise<{ status: number, text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, localAddress, method: 'POST', path: `/v1/docs/${docId}`, headers: { 'content-length': body.length }, agent: false }, res => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { text += chunk })
      res.on('end', () => resolve({ status: res.statusCode!, text }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

/** A Yjs update inserting `chars` characters. */
function updateOf (chars: number): Uint8Array {
  const doc = new Y.Doc()
  doc.getText('t').insert(0, 'x'.repeat(chars))
  return Y.encodeStateAsUpdate(doc)
}

/** `promise`'s value, or `fallback` after `ms`. */
const within = <T>(promise: Promise<T>, ms: number, fallback: T): Promise<T> =>
  Promise.race([promise, new Promise<T>(resolve => setTimeout(() => resolve(fallback), ms))])

const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

describe('the pace of a request body', () => {
  const REQUEST_TIMEOUT_MS = 1000
  let relay: Relay

  beforeAll(async () => {
    relay = await startRelay({ port: 0, dataDir: join(root, 'paced'), requestTimeoutMs: REQUEST_TIMEOUT_MS, limits: { maxFrameBytes: 2 * MiB, minBodyBytesPerSecond: 64 * KiB }, logger: captureLog('warn').logger })
  })
  afterAll(() => relay.close())

  it('closes a socket whose body stalls or trickles, within two request timeouts', async () => {
    const started = Date.now()
    const nearlyWhole = rawPost(relay.port, 'bodies/nearly-whole', 2 * MiB - 1, 2 * MiB - 2) // one byte short
    const fewBytes = rawPost(relay.port, 'bodies/few-bytes', 2 * MiB - 1, 100)
    const trickle = rawPost(relay.port, 'bodies/trickle', 2 * MiB - 1, 0)
    const drip = setInterval(() => trickle.socket.write(Buffer.alloc(KiB)), 100) // 10 KiB/s, never idle
    try {
      const closedAt = await Promise.all([nearlyWhole, fewBytes, trickle].map(post => within(post.closedAt, 10_000, Infinity)))
      // Cut at the first check the body fails: after one request timeout, or two for the one that sent nearly all at once (with slack for a busy machine).
      for (const at of closedAt) expect(at - started).toBeLessThan(2 * REQUEST_TIMEOUT_MS + 2000)
    } finally {
      clearInterval(drip)
    }
    expect((await postFrom(relay.port, 'bodies/after', updateOf(100), '127.0.0.1')).status).toBe(200)
  })

  it('lets a slow but steady upload through: 384 KiB at 128 KiB/s, twice the minimum', async () => {
    const update = updateOf(384 * KiB)
    const post = rawPost(relay.port, 'bodies/steady', update.length, 0)
    const started = Date.now()
    let sent = 0
    // What is due by now at 128 KiB/s: timers that fire late catch up instead of slowing the upload.
    while (sent < update.length) {
      const due = Math.min(update.length, Math.floor((Date.now() - started) * 128 * KiB / 1000))
      if (due > sent) post.socket.write(update.subarray(sent, due))
      sent = Math.max(sent, due)
      await sleep(50)
    }
    expect(Date.now() - started).toBeGreaterThan(2 * REQUEST_TIMEOUT_MS)
    expect(await within(post.status, 10_000, null)).toBe(200)
    post.socket.destroy()
  })
})

describe('the bytes of request bodies held', () => {
  const BODY = MiB - 1 // under maxFrameBytes
  let relay: Relay

  beforeAll(async () => {
    relay = await startRelay({ port: 0, dataDir: join(root, 'budget'), limits: { maxFrameBytes: MiB, maxBodyBytesPerIp: 2 * MiB, maxBodyBytesTotal: 3 * MiB }, logger: captureLog('warn').logger })
  })
  afterAll(() => relay.close())

  /** The relay's `petaldb_http_body_bytes` gauge. */
  async function held (): Promise<number> {
    const text = await (await fetch(`${relay.url.replace('ws:', 'http:')}/metrics`)).text()
    return Number(/^petaldb_http_body_bytes (\S+)$/m.exec(text)?.[1] ?? NaN)
  }

  /** Polls {@link held} until it is `expected` (at most 5 s); returns the last figure. */
  async function heldBecomes (expected: number): Promise<number> {
    const deadline = Date.now() + 5000
    let now = await held()
    while (now !== expected && Date.now() < deadline) {
      await sleep(20)
      now = await held()
    }
    return now
  }

  it('holds at most the allowance of one address and of all, refuses more with 429 and 503, and frees it when sockets close', async () => {
    const posts: RawPost[] = []
    try {
      // Ten bodies one byte short from one address, one after another: two are held, the rest refused at once.
      for (let i = 0; i < 10; i++) {
        const post = rawPost(relay.port, `bodies/held-${i}`, BODY, BODY - 1)
        posts.push(post)
        if (i < 2) expect(await heldBecomes((i + 1) * (BODY - 1))).toBe((i + 1) * (BODY - 1))
        else expect(await within(post.status, 5000, null)).toBe(429)
      }
      expect(await held()).toBeLessThanOrEqual(2 * MiB)
      const fromFirst = await postFrom(relay.port, 'bodies/small', updateOf(100), '127.0.0.1')
      expect(fromFirst.status).toBe(429)
      expect(fromFirst.text).toMatch(/from one address/)

      // Another address still may, up to what all addresses together may hold.
      expect((await postFrom(relay.port, 'bodies/small', updateOf(100), '127.0.0.2')).status).toBe(200)
      const second = rawPost(relay.port, 'bodies/held-second', BODY, BODY - 1, '127.0.0.2')
      posts.push(second)
      expect(await heldBecomes(3 * (BODY - 1))).toBe(3 * (BODY - 1))
      const fromThird = await postFrom(relay.port, 'bodies/small', updateOf(100), '127.0.0.3')
      expect(fromThird.status).toBe(503)
      expect(fromThird.text).toMatch(/in all/)

      // The held sockets close: their bytes are freed, and the first address posts again.
      for (const post of posts) post.socket.destroy()
      expect(await heldBecomes(0)).toBe(0)
      expect((await postFrom(relay.port, 'bodies/small', updateOf(100), '127.0.0.1')).status).toBe(200)
    } finally {
      for (const post of posts) post.socket.destroy()
    }
  })
})
