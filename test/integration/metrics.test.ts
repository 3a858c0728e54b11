/**
 * `GET /metrics`, parsed as Prometheus text, after real traffic on an in-process relay:
 * connections by kind, documents, updates and bytes by source, commit and acknowledgement
 * latency, compactions, and refused connections by close code (PetalDB's codes only: those
 * clients pick count as `other`).
 */
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import * as Y from 'yjs'
import { startRelay, type Relay } from '../../server/relay.js'
import { Replica } from '../../client/replica.js'
import { SqliteStore } from '../../client/node.js'
import { CloseCode } from '../../shared/wire/close-codes.js'
import { NATIVE_SUBPROTOCOL } from '../../shared/wire/native-messages.js'
import { once } from '../helpers/events.js'
import { captureLog } from '../helpers/log-capture.js'
import { stockClient } from '../helpers/stock-client.js'
import { tempDir } from '../helpers/temp.js'
import { signToken } from '../helpers/tokens.js'

const SECRET = 'metrics-test-secret-0123456789'
const root = tempDir()
let relay: Relay

beforeAll(async () => {
  relay = await startRelay({ port: 0, dataDir: join(root, 'data'), authKeys: new Map([['', SECRET]]), compactMinBytes: 1024, logger: captureLog('warn').logger })
})
afterAll(() => relay.close())

/** Samples of the Prometheus text format: `name{label="value",...} number` → value, keyed by the line's name and labels. */
function parse (text: string): Map<string, number> {
  const samples = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$/.exec(line)
    if (match === null) throw new Error(`not a Prometheus sample line: ${line}`)
    samples.set(match[1]!, Number(match[2]))
  }
  return samples
}

async function scrape (): Promise<Map<string, number>> {
  const response = await fetch(`${relay.url.replace('ws:', 'http:')}/metrics`)
  expect(response.status).toBe(200)
  expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
  return parse(await response.text())
}

describe('GET /metrics', () => {
  it('reports connections, documents, updates, latency, compactions and refusals as Prometheus text', async () => {
    const token = await signToken(SECRET, { write: ['*'] })
    const stock = stockClient(relay.url, 'metrics/doc', { params: { token } })
    const replica = new Replica({ store: new SqliteStore(join(root, 'replica.db')), relays: [relay.url], token })
    try {
      await stock.synced()
      const doc = await replica.open('metrics/doc')
      for (let i = 0; i < 40; i++) doc.getText('t').insert(0, 'x'.repeat(100)) // past compactMinBytes: a compaction
      await replica.doc('metrics/doc').durable()
      await stock.textIs(doc.getText('t').toString())
      const refused = new WebSocket(`${relay.url}/metrics/doc?token=forged`)
      refused.on('error', () => {})
      await once(refused, 'close')
      const viaHttp = new Y.Doc()
      viaHttp.getText('t').insert(0, 'over http')
      const posted = await fetch(`${relay.url.replace('ws:', 'http:')}/v1/docs/metrics/http`, {
        method: 'POST', headers: { authorization: `Bearer ${token}` }, body: new Uint8Array(Y.encodeStateAsUpdate(viaHttp))
      })
      expect(posted.status).toBe(200)

      const metrics = await scrape()
      expect(metrics.get('petaldb_connections{kind="native"}')).toBe(1)
      expect(metrics.get('petaldb_connections{kind="y-websocket"}')).toBe(1)
      expect(metrics.get('petaldb_connections{kind="relay"}')).toBe(0)
      expect(metrics.get('petaldb_documents')).toBeGreaterThanOrEqual(1)
      expect(metrics.get('petaldb_updates_received_total{source="client"}')).toBeGreaterThanOrEqual(1)
      expect(metrics.get('petaldb_update_bytes_received_total{source="client"}')).toBeGreaterThan(4000)
      expect(metrics.get('petaldb_updates_received_total{source="http"}')).toBe(1)
      expect(metrics.get('petaldb_ack_seconds_count')).toBeGreaterThanOrEqual(1)
      expect(metrics.get('petaldb_commit_seconds_count')).toBeGreaterThanOrEqual(1)
      expect(metrics.get('petaldb_compactions_total')).toBeGreaterThanOrEqual(1)
      expect(metrics.get('petaldb_connections_closed_total{code="4401"}')).toBe(1)
      expect(metrics.has('petaldb_cluster_members{state="total"}')).toBe(false) // a relay on its own
    } finally {
      stock.destroy()
      await replica.close()
    }
    // Closed connections leave the gauges (the relay sees the closes a moment later: poll, bounded).
    const deadline = Date.now() + 5000
    let after = await scrape()
    while (after.get('petaldb_connections{kind="native"}')! + after.get('petaldb_connections{kind="y-websocket"}')! > 0 && Date.now() < deadline) after = await scrape()
    expect(after.get('petaldb_connections{kind="native"}')).toBe(0)
    expect(after.get('petaldb_connections{kind="y-websocket"}')).toBe(0)
  })

  it('labels only the close codes PetalDB defines: 2,000 codes a client picks make one series, other', async () => {
    const closedTotal = (samples: Map<string, number>): number =>
      [...samples].filter(([key]) => key.startsWith('petaldb_connections_closed_total{')).reduce((sum, [, value]) => sum + value, 0)
    const before = await scrape()
    const codes = Array.from({ length: 2000 }, (_, i) => 3000 + i)
    // Native connections, closed by the client before its HELLO: a hundred at a time, under the per-address allowance.
    for (let i = 0; i < codes.length; i += 100) {
      await Promise.all(codes.slice(i, i + 100).map(async code => {
        const ws = new WebSocket(`${relay.url}/`, NATIVE_SUBPROTOCOL)
        await once(ws, 'open')
        ws.close(code)
        await once(ws, 'close')
      }))
    }
    const deadline = Date.now() + 5000
    let after = await scrape()
    while (closedTotal(after) < closedTotal(before) + codes.length && Date.now() < deadline) after = await scrape()

    // PetalDB's codes, and those the relay's side sets for a close without a code and for a dropped connection.
    const defined = new Set<number>([...Object.values(CloseCode), 1005, 1006])
    const definedHere = codes.filter(code => defined.has(code))
    const labels = [...after.keys()].flatMap(key => /^petaldb_connections_closed_total\{code="([^"]*)"\}$/.exec(key)?.[1] ?? [])
    expect(labels.filter(label => label !== 'other' && !defined.has(Number(label)))).toEqual([])
    const count = (label: string, samples: Map<string, number>): number => samples.get(`petaldb_connections_closed_total{code="${label}"}`) ?? 0
    expect(count('other', after) - count('other', before)).toBe(codes.length - definedHere.length)
    // A client closing with one of PetalDB's codes is counted under it.
    for (const code of definedHere) expect(count(String(code), after) - count(String(code), before)).toBe(1)
  })
})
