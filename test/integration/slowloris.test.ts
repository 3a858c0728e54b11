/**
 * Half-sent upgrade requests (slowloris) cannot exhaust a relay: sockets count against
 * their address from the first byte, an address holding twice its allowance has more
 * dropped at once, and unfinished requests are cut off after the request timeout; honest
 * clients, from that address too once the timeout passed, connect at once. A connection
 * that stops answering keep-alive pings is dropped; one that answers stays.
 */
import { connect, type Socket } from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { startRelay, type Relay } from '../../server/relay.js'
import { once } from '../helpers/events.js'
import { captureLog } from '../helpers/log-capture.js'
import { tempDir } from '../helpers/temp.js'

const PER_IP = 20
let relay: Relay

beforeAll(async () => {
  relay = await startRelay({ port: 0, dataDir: join(tempDir(), 'relay'), limits: { maxConnectionsPerIp: PER_IP }, requestTimeoutMs: 500, logger: captureLog('warn').logger })
})
afterAll(async () => { await relay.close() })

/** A socket that starts an upgrade request and never finishes it; resolves with the time it was closed. */
function halfSent (): Promise<number> {
  return new Promise(resolve => {
    const socket: Socket = connect(relay.port, '127.0.0.1', () => {
      socket.write('GET /doc HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n')
    })
    socket.on('error', () => {})
    socket.once('close', () => resolve(Date.now()))
  })
}

async function honest (localAddress: string): Promise<number> {
  const started = Date.now()
  const ws = new WebSocket(`${relay.url}/honest`, { localAddress })
  await once(ws, 'open')
  ws.close()
  return Date.now() - started
}

describe('slowloris', () => {
  it('drops sockets beyond twice the allowance at once, times out unfinished requests, and keeps serving', async () => {
    const started = Date.now()
    const closed = Array.from({ length: 300 }, halfSent)
    // Another address is not held up at all.
    expect(await honest('127.0.0.2')).toBeLessThan(1000)
    const closedAt = await Promise.all(closed)
    const early = closedAt.filter(at => at - started < 400).length
    // All but the allowed 2 × 20 were dropped at once; those were cut off by the request timeout.
    expect(early).toBeGreaterThanOrEqual(300 - 2 * PER_IP)
    expect(Math.max(...closedAt) - started).toBeLessThan(5000)
    expect(await honest('127.0.0.1')).toBeLessThan(1000)
  })
})

describe('keep-alive', () => {
  it('terminates a connection that does not answer pings and keeps one that does', async () => {
    const pinging = await startRelay({ port: 0, dataDir: join(tempDir(), 'relay'), pingIntervalMs: 100, logger: captureLog('warn').logger })
    try {
      const answering = new WebSocket(`${pinging.url}/answering`)
      const silent = new WebSocket(`${pinging.url}/silent`, { autoPong: false })
      await Promise.all([once(answering, 'open'), once(silent, 'open')])
      const [code] = await once(silent, 'close') as [number]
      expect(code).toBe(1006)
      // Several pings later the answering one is still there.
      await new Promise(resolve => setTimeout(resolve, 300))
      expect(answering.readyState).toBe(WebSocket.OPEN)
      expect(pinging.health().clients).toBe(1)
      answering.close()
    } finally {
      await pinging.close()
    }
  })
})
