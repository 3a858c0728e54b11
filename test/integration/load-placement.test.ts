/**
 * Load placement on four relays sharing one real PostgreSQL database (child processes from
 * the CLI, low thresholds through --placement): a write load skewed onto one relay by
 * rendezvous hashing spreads over the others, every write is acknowledged and in the
 * database (none lost across the hand-overs: replicas re-send what was not acknowledged),
 * moves stop, and no document moves twice; stock clients reach a moved document through any
 * relay. /healthz and /metrics report the load and moves.
 */
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type * as Y from 'yjs'
import { Replica } from '../../client/replica.js'
import { SqliteStore } from '../../client/node.js'
import { preferenceList } from '../../shared/placement.js'
import { tempDir } from '../helpers/temp.js'
import { POSTGRES_MISSING, runPostgresTests, startPostgres, type TestPostgres } from '../helpers/postgres.js'
import { inDatabase, startPostgresRelays, type PostgresRelays } from '../helpers/postgres-relays.js'
import { stockClient } from '../helpers/stock-client.js'

if (!runPostgresTests) console.warn(POSTGRES_MISSING)

const LEASE_MS = 1000
const IDS = ['r1', 'r2', 'r3', 'r4']
/** Low thresholds, a short average and cooldown, so that the test sees moves within seconds. */
const PLACEMENT = 'ratio=1.5,goal=1.2,min-rate=20,window-ms=1000,cooldown-ms=120000,moves-per-minute=12'
/** Milliseconds between write ticks: every hot document gets one write per tick (20 updates/s each). */
const TICK_MS = 50

const root = tempDir()
let n = 0
const replicas: Replica[] = []
const groups: PostgresRelays[] = []

function replica (url: string): Replica {
  const r = new Replica({ store: new SqliteStore(join(root, `replica-${n++}`, 'local.db')), relays: [url], minReconnectDelayMs: 20, maxReconnectDelayMs: 200 })
  replicas.push(r)
  return r
}
const homeOf = (docId: string): string => preferenceList(docId, IDS.map(id => ({ id })))[0]!.id

interface Load { updatesPerSecond: number, bytesPerSecond: number, elu: number, documentBytes: number, placedHere: number, moves: { out: number, in: number } }
async function loadOf (url: string): Promise<Load> {
  const response = await fetch(url.replace(/^ws/, 'http') + '/healthz')
  return (await response.json() as { load: Load }).load
}

describe.runIf(runPostgresTests)('load placement on relays sharing PostgreSQL', () => {
  let server: TestPostgres
  beforeAll(async () => { server = await startPostgres() })
  afterEach(async () => {
    await Promise.all(replicas.splice(0).map(r => r.close()))
    await Promise.all(groups.splice(0).map(g => g.stopAll()))
  })
  afterAll(async () => { await server?.destroy() })

  it('spreads a load skewed onto one relay, acknowledges and keeps every write, and settles', async () => {
    const url = await server.createDatabase()
    const group = await startPostgresRelays(url, IDS, { leaseMs: LEASE_MS, extraArgs: ['--placement', PLACEMENT] })
    groups.push(group)
    // Eight hot documents whose rendezvous home is r1, one cooler one on each other relay.
    const candidates = Array.from({ length: 400 }, (_, i) => `hot/${i}`)
    const hot = candidates.filter(id => homeOf(id) === 'r1').slice(0, 8)
    const coolDocs = IDS.slice(1).map(id => Array.from({ length: 400 }, (_, i) => `cool/${i}`).find(docId => homeOf(docId) === id)!)
    // Two replicas, starting from relays other than r1: they follow the map, and redirects.
    const writers = [replica(group.byId('r2').url), replica(group.byId('r3').url)]
    const docsOf = [[...hot.slice(0, 4), coolDocs[0]!], [...hot.slice(4), ...coolDocs.slice(1)]]
    const arrays = new Map<string, { writer: Replica, items: Y.Array<string> }>()
    for (const [w, docIds] of docsOf.entries()) {
      for (const docId of docIds) arrays.set(docId, { writer: writers[w]!, items: (await writers[w]!.open(docId)).getArray<string>('items') })
    }
    const acked = new Map<string, string[]>([...arrays.keys()].map(id => [id, []]))
    /** When each write was made and acknowledged (Date.now(), the clock of the relays' logs). */
    const spans: Array<{ docId: string, made: number, acked: number }> = []
    const writes: Array<Promise<void>> = []
    let written = 0
    const write = (docId: string): void => {
      const { writer, items } = arrays.get(docId)!
      const token = `${docId}#${written++}`
      items.push([token])
      const made = Date.now()
      writes.push(writer.doc(docId).durable().then(() => {
        acked.get(docId)!.push(token)
        spans.push({ docId, made, acked: Date.now() })
      }))
    }
    let tick = 0
    let loading = true
    const load = (async () => {
      while (loading) {
        for (const docId of hot) write(docId)
        if (tick++ % 4 === 0) for (const docId of coolDocs) write(docId)
        await new Promise(resolve => setTimeout(resolve, TICK_MS))
      }
    })()
    const moveLog = (): Array<{ relay: string, doc: string, to: string, at: number }> => group.relays.flatMap(relay =>
      (relay.process?.logs ?? []).filter(entry => entry.msg === 'moving a document by load').map(entry => ({ relay: relay.id, doc: String(entry.doc), to: String(entry.to), at: Number(entry.time) })))
    try {
      // The first move, then enough time for the moved load to show where it went, and for further rounds.
      await group.byId('r1').process!.waitForLog('moving a document by load', 15_000)
      await new Promise(resolve => setTimeout(resolve, 4000))
      const settled = moveLog().length
      // Settled: no move for three more seconds of the same load.
      await new Promise(resolve => setTimeout(resolve, 3000))
      const moves = moveLog()
      const loads = await Promise.all(group.relays.map(relay => loadOf(relay.url)))
      const rates = loads.map(figures => figures.updatesPerSecond)
      const mean = rates.reduce((a, b) => a + b, 0) / rates.length
      console.log(`load placement: ${moves.length} moves (${moves.map(m => `${m.doc} ${m.relay}->${m.to}`).join(', ')}); updates/s per relay now ${rates.map(r => r.toFixed(0)).join(' / ')}, max/mean ${(Math.max(...rates) / mean).toFixed(2)} (rendezvous alone: r1 carries ${(8 * 20 / (8 * 20 + 3 * 5) * 100).toFixed(0)}% of the load)`)
      expect(moves.length).toBe(settled)
      expect(moves.length).toBeGreaterThanOrEqual(2)
      // Only r1 was over the mean; each document moved once, each to another relay.
      expect(new Set(moves.map(m => m.doc)).size).toBe(moves.length)
      expect(moves.every(m => m.relay === 'r1' && m.to !== 'r1' && hot.includes(m.doc))).toBe(true)
      // The load spread: r1 no longer carries most of it, and the others carry what moved.
      expect(rates[0]!).toBeLessThan(0.6 * rates.reduce((a, b) => a + b, 0))
      expect(Math.max(...rates) / mean).toBeLessThan(2)
      expect(loads[0]!.moves.out).toBe(moves.length)
      expect(loads.slice(1).reduce((sum, figures) => sum + figures.moves.in, 0)).toBe(moves.length)
      expect(loads.slice(1).reduce((sum, figures) => sum + figures.placedHere, 0)).toBe(moves.length)
      // A stock client reaches a moved document through any relay (passed on to where it is placed), and sees what replicas wrote.
      const moved = moves[0]!.doc
      for (const via of ['r1', moves[0]!.to, IDS.find(id => id !== 'r1' && id !== moves[0]!.to)!]) {
        const stock = stockClient(group.byId(via).url, moved)
        try {
          await stock.synced()
          expect(stock.doc.getArray<string>('items').toArray()).toContain(acked.get(moved)![0])
        } finally {
          stock.destroy()
        }
      }
      const metrics = await (await fetch(group.byId('r1').url.replace(/^ws/, 'http') + '/metrics')).text()
      expect(metrics).toContain(`petaldb_placement_moves_total{direction="out"} ${moves.length}`)
      expect(metrics).toMatch(/petaldb_load_updates_per_second \d/)
      expect(metrics).toMatch(/petaldb_event_loop_utilization [\d.]+/)
    } finally {
      loading = false
      await load
    }
    // Every write acknowledged, and every one in the database: nothing lost across the hand-overs.
    await Promise.all(writes)
    const inFlight = moveLog().reduce((sum, move) => sum + spans.filter(span => span.docId === move.doc && span.made <= move.at && span.acked > move.at).length, 0)
    console.log(`load placement: ${written} writes, ${inFlight} of them made before a move of their document and acknowledged after it (by the relay it moved to)`)
    expect([...acked.values()].reduce((sum, tokens) => sum + tokens.length, 0)).toBe(written)
    const stored = await inDatabase(url, [...arrays.keys()])
    for (const [docId, tokens] of acked) {
      const items = new Set(stored.get(docId)!.getArray<string>('items').toArray())
      expect(tokens.filter(token => !items.has(token)), docId).toEqual([])
    }
  }, 40_000)
})
