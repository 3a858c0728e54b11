/**
 * Side-by-side scenarios: each runs one measurement against one server and returns its
 * figures. The driver (run.ts) repeats them, interleaving servers, and computes medians and
 * ratios.
 */
import { randomUUID } from 'node:crypto'
import { openSync, writeSync, fdatasyncSync, closeSync, rmSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import WebSocket from 'ws'
import * as Y from 'yjs'
import { connectWebSocket, type WebSocketConstructor } from '../shared/transport/websocket.js'
import { parseDocId } from '../shared/wire/doc-id.js'
import { NATIVE_PROTOCOL_VERSION, decodeNativeMessage, encodeNativeMessage } from '../shared/wire/native-messages.js'
import { protocolOf, startServer, type BenchServer, type ServerKind } from './servers.js'
import { loadTrace, patchesOf } from './traces.js'
import { connectWire, type WireClient } from './wire.js'
import { percentile } from './stats.js'

export type Figures = Record<string, number>

const nextTurn = (): Promise<void> => new Promise(resolve => setImmediate(resolve))
/** Update indices carried by an update (a server may merge several updates into one). */
const INDICES = /#(\d+)#/g

function withTimeout<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([promise, new Promise<T>((_resolve, reject) => setTimeout(() => reject(new Error(`timed out: ${what}`)), ms).unref())])
}

/** Scenario 1 (and 6 with the bare server): one writer, 50 readers, 10,000 small updates. */
export async function fanOut (server: BenchServer, updates = 10_000, readers = 50, batch = 50): Promise<Figures> {
  const protocol = protocolOf(server.kind)
  const docId = `fanout-${Math.random().toString(36).slice(2)}`
  const sentAt = new Float64Array(updates)
  const latencies = new Float64Array(updates * readers)
  let received = 0
  let done!: () => void
  const finished = new Promise<void>(resolve => { done = resolve })
  const decoder = new TextDecoder('latin1')
  const clients: WireClient[] = []
  for (let r = 0; r < readers; r++) {
    clients.push(connectWire(protocol, server.url, docId, update => {
      const now = performance.now()
      for (const match of decoder.decode(update).matchAll(INDICES)) latencies[received++] = now - sentAt[Number(match[1])]!
      if (received === updates * readers) done()
    }))
  }
  const writer = connectWire(protocol, server.url, docId)
  await Promise.all([...clients, writer].map(c => c.ready))
  const doc = new Y.Doc()
  const items = doc.getArray<string>('a')
  let pending: Uint8Array | null = null
  doc.on('update', (update: Uint8Array) => { pending = update })
  const cpuBefore = server.cpuSeconds()
  const start = performance.now()
  for (let i = 0; i < updates; i += batch) {
    for (let j = i; j < Math.min(updates, i + batch); j++) {
      items.push([`#${j}#`])
      sentAt[j] = performance.now()
      writer.send(pending!)
    }
    await nextTurn()
  }
  await withTimeout(finished, 120_000, `fan-out on ${server.kind} (${received} of ${updates * readers} delivered)`)
  const seconds = (performance.now() - start) / 1000
  const cpu = server.cpuSeconds() - cpuBefore
  for (const c of [...clients, writer]) c.close()
  latencies.sort()
  return { 'updates/s to all readers': updates / seconds, 'latency p50 (ms)': percentile(latencies, 0.5), 'latency p99 (ms)': percentile(latencies, 0.99), ...serverCpu(cpu, updates) }
}

/**
 * Scenario 2: 1,000 documents with 2 clients each, one write per document per second,
 * then idle. Memory per document is the growth of the server's live memory (after a full
 * garbage collection): RSS at this scale mostly shows how far V8 grew its heap under the
 * write load (tens of MB for its young generation alone), which says little about what a
 * document costs. RSS growth is reported beside it. `atIdle` runs after the measurement,
 * while the documents are still open and idle (bench/heap-split.ts takes a heap snapshot there).
 */
export async function manyDocuments (server: BenchServer, documents = 1000, seconds = 5, atIdle?: () => Promise<void>): Promise<Figures> {
  const protocol = protocolOf(server.kind)
  const baseline = { live: await server.liveBytes(), rss: server.rssBytes() }
  const prefix = `many-${Math.random().toString(36).slice(2)}`
  const pairs: WireClient[][] = []
  for (let d = 0; d < documents; d += 50) {
    const batch = Array.from({ length: Math.min(50, documents - d) }, (_, i) => [0, 1].map(() => connectWire(protocol, server.url, `${prefix}/${d + i}`)))
    await Promise.all(batch.flat().map(c => c.ready))
    pairs.push(...batch)
  }
  const docs = pairs.map(() => new Y.Doc())
  const cpuBefore = server.cpuSeconds()
  const start = performance.now()
  for (let second = 0; second < seconds; second++) {
    const tick = performance.now()
    for (const [i, pair] of pairs.entries()) {
      let update: Uint8Array | null = null
      docs[i]!.once('update', (u: Uint8Array) => { update = u })
      docs[i]!.getText('t').insert(0, 'x')
      pair[second % 2]!.send(update!)
    }
    await new Promise(resolve => setTimeout(resolve, Math.max(0, 1000 - (performance.now() - tick))))
  }
  const cpu = (server.cpuSeconds() - cpuBefore) / ((performance.now() - start) / 1000)
  // Let the last writes settle; the documents stay open and idle.
  await new Promise(resolve => setTimeout(resolve, 1000))
  const rss = server.rssBytes()
  const live = await server.liveBytes()
  await atIdle?.()
  for (const c of pairs.flat()) c.close()
  return {
    'live memory per open idle document (KiB)': (live - baseline.live) / documents / 1024,
    'RSS growth per document (KiB)': (rss - baseline.rss) / documents / 1024,
    'server CPU (% of a core)': cpu * 100
  }
}

/** The automerge-paper document as one update (built once). */
let paperUpdate: Uint8Array | null = null
export function paper (): Uint8Array {
  if (paperUpdate !== null) return paperUpdate
  const doc = new Y.Doc()
  const text = doc.getText('t')
  for (const [pos, del, ins] of patchesOf(loadTrace('automerge-paper'))) {
    if (del > 0) text.delete(pos, del)
    if (ins !== '') text.insert(pos, ins)
  }
  paperUpdate = Y.encodeStateAsUpdate(doc)
  return paperUpdate
}

/**
 * Scenario 3: a document holding the whole automerge-paper trace, on the server's disk and
 * not in memory (the server is restarted after storing it): time from connect to synced.
 */
export async function coldLoad (kind: ServerKind, dataDir: string): Promise<Figures> {
  let server = await startServer(kind, dataDir, true)
  const docId = 'paper'
  const writer = connectWire(protocolOf(kind), server.url, docId)
  await writer.ready
  writer.send(paper())
  // A second client whose initial state holds the paper proves the server applied it;
  // closing both lets the server store and unload the document; a graceful stop flushes the rest.
  const size = paper().length
  const seen = new Promise<void>(resolve => {
    const check = connectWire(protocolOf(kind), server.url, docId, update => { if (update.length >= size / 2) { check.close(); resolve() } })
  })
  await withTimeout(seen, 60_000, 'the paper to reach the server')
  writer.close()
  await new Promise(resolve => setTimeout(resolve, kind === 'hocuspocus' ? 3000 : 200))
  await server.stop()
  server = await startServer(kind, dataDir, true)
  const start = performance.now()
  const reader = connectWire(protocolOf(kind), server.url, docId)
  await withTimeout(reader.ready, 60_000, 'cold sync')
  const ms = performance.now() - start
  reader.close()
  await server.stop()
  return { 'connect to synced (ms)': ms }
}

/**
 * Scenario 4 (PetalDB only): acknowledged updates per second with many writers over the
 * native protocol, ack latency, and the raw fdatasync rate of the same disk.
 */
export async function durableWrites (server: BenchServer, dataDir: string, docPrefix = 'durable', writers = 32, inFlight = 32, updatesPerWriter = 1000): Promise<Figures> {
  const latencies: number[] = []
  // Every writer connects, syncs and encodes its messages first: the clock measures the writes only.
  const writing = Array.from({ length: writers }, async (_, w) => {
    const link = await connectWebSocket(server.url, WebSocket as unknown as WebSocketConstructor)
    const docId = parseDocId(`${docPrefix}/${w}`)
    const doc = new Y.Doc()
    const messages: Uint8Array[] = []
    doc.on('update', (update: Uint8Array) => messages.push(encodeNativeMessage({ type: 'update', docId, seq: messages.length + 1, update })))
    for (let i = 0; i < updatesPerWriter; i++) doc.getArray('a').push([i])
    const sentAt = new Float64Array(updatesPerWriter + 1)
    let acked = 0
    let synced!: () => void
    const ready = new Promise<void>(resolve => { synced = resolve })
    let wake: (() => void) | null = null
    link.onMessage = frame => {
      const message = decodeNativeMessage(frame)
      if (message.type === 'sync') synced()
      if (message.type !== 'ack') return
      const now = performance.now()
      for (let s = acked + 1; s <= message.seq; s++) latencies.push(now - sentAt[s]!)
      acked = message.seq
      wake?.()
    }
    link.send(encodeNativeMessage({ type: 'hello', version: NATIVE_PROTOCOL_VERSION, peer: { peerId: randomUUID(), isRelay: false }, token: '' }))
    link.send(encodeNativeMessage({ type: 'open', docId, stateVector: new Uint8Array([0]) }))
    await ready
    return async (): Promise<void> => {
      let seq = 0
      while (acked < updatesPerWriter) {
        while (seq < updatesPerWriter && seq - acked < inFlight) {
          sentAt[++seq] = performance.now()
          link.send(messages[seq - 1]!)
        }
        await new Promise<void>(resolve => { wake = resolve })
      }
      link.close(1000, 'done')
    }
  })
  const runs = await Promise.all(writing)
  const cpuBefore = server.cpuSeconds()
  const start = performance.now()
  await Promise.all(runs.map(run => run()))
  const seconds = (performance.now() - start) / 1000
  const cpu = server.cpuSeconds() - cpuBefore
  latencies.sort((a, b) => a - b)
  return {
    'acked updates/s': writers * updatesPerWriter / seconds,
    'ack latency p50 (ms)': percentile(latencies, 0.5),
    'ack latency p99 (ms)': percentile(latencies, 0.99),
    ...serverCpu(cpu, writers * updatesPerWriter),
    'fdatasync/s (same disk)': fdatasyncRate(dataDir)
  }
}

/**
 * The server's CPU time per update while measuring: steadier than throughput on a shared
 * machine (a neighbour taking the core slows both, but adds no CPU time to the server).
 */
function serverCpu (seconds: number, updates: number): Figures {
  return { 'server CPU ms per 1,000 updates': seconds * 1000 / updates * 1000 }
}

/** One small write plus fdatasync per operation, for two seconds. */
function fdatasyncRate (dir: string): number {
  const scratch = mkdtempSync(join(dir, 'fsync-'))
  const fd = openSync(join(scratch, 'probe'), 'w')
  const byte = Buffer.from([1])
  let count = 0
  const start = performance.now()
  while (performance.now() - start < 2000) {
    writeSync(fd, byte)
    fdatasyncSync(fd)
    count++
  }
  closeSync(fd)
  rmSync(scratch, { recursive: true, force: true })
  return count / ((performance.now() - start) / 1000)
}

/**
 * Scenario 5: the friendsforever trace replayed by two clients through the server. Each
 * agent applies a transaction on top of exactly its parents (taken from the other agent's
 * local copy, so positions match the trace), and sends it only once the server has
 * delivered those parents back to it: updates reach the server in causal order, as they do
 * from real clients. An observer checks the final text against endContent.
 */
export async function concurrentTrace (server: BenchServer): Promise<Figures> {
  const trace = loadTrace('friendsforever') as unknown as { endContent: string, txns: Array<{ parents: number[], agent: number, patches: Array<[number, number, string]> }> }
  const protocol = protocolOf(server.kind)
  const docId = `trace-${Math.random().toString(36).slice(2)}`
  const observer = new Y.Doc()
  let converged!: () => void
  const done = new Promise<void>(resolve => { converged = resolve })
  const watch = connectWire(protocol, server.url, docId, update => {
    Y.applyUpdate(observer, update)
    if (observer.getText('t').length === trace.endContent.length && observer.getText('t').toString() === trace.endContent) converged()
  })
  // Per agent: its replay doc, its wire client, and an inbox doc holding what the server sent it.
  // Yjs orders concurrent insertions at one position by client id; endContent has agent 0's first.
  const firstClientId = 1 + Math.floor(Math.random() * 2 ** 30)
  const agents = [0, 1].map(agent => {
    const inbox = new Y.Doc()
    const doc = new Y.Doc()
    doc.clientID = firstClientId + agent
    return { doc, inbox, client: connectWire(protocol, server.url, docId, update => Y.applyUpdate(inbox, update)), applied: [0, 0] }
  })
  await Promise.all([watch.ready, ...agents.map(a => a.client.ready)])
  const updatesOf: Uint8Array[][] = [[], []]
  const ordinal = trace.txns.map(() => 0)
  /** The other agent's clock after each transaction: every transaction also sets a marker, so it advances. */
  const clockAfter = trace.txns.map(() => 0)
  const arrived = (inbox: Y.Doc, client: number, clock: number): boolean => (Y.decodeStateVector(Y.encodeStateVector(inbox)).get(client) ?? 0) >= clock
  const start = performance.now()
  for (const [index, txn] of trace.txns.entries()) {
    const self = agents[txn.agent]!
    const other = 1 - txn.agent
    for (const parent of txn.parents) {
      if (trace.txns[parent]!.agent !== other) continue
      // Wait until the server has delivered the parent, then apply it (and its predecessors) locally.
      const otherClient = agents[other]!.doc.clientID
      if (!arrived(self.inbox, otherClient, clockAfter[parent]!)) {
        await withTimeout(new Promise<void>(resolve => {
          const check = (): void => { if (arrived(self.inbox, otherClient, clockAfter[parent]!)) { self.inbox.off('update', check); resolve() } }
          self.inbox.on('update', check)
        }), 60_000, `${server.kind} to deliver a parent`)
      }
      while (self.applied[other]! <= ordinal[parent]!) Y.applyUpdate(self.doc, updatesOf[other]![self.applied[other]!++]!, 'merge')
    }
    let update: Uint8Array | null = null
    const capture = (u: Uint8Array, origin: unknown): void => { if (origin !== 'merge') update = u }
    self.doc.on('update', capture)
    self.doc.transact(() => {
      const text = self.doc.getText('t')
      for (const [pos, del, ins] of txn.patches) {
        if (del > 0) text.delete(pos, del)
        if (ins !== '') text.insert(pos, ins)
      }
      self.doc.getMap('marker').set(String(txn.agent), index)
    })
    self.doc.off('update', capture)
    clockAfter[index] = Y.decodeStateVector(Y.encodeStateVector(self.doc)).get(self.doc.clientID) ?? 0
    ordinal[index] = updatesOf[txn.agent]!.length
    updatesOf[txn.agent]!.push(update!)
    self.client.send(update!)
    // The inbox stands for the agent's own replica: it has the agent's own updates too.
    Y.applyUpdate(self.inbox, update!, 'own')
    if (index % 100 === 0) await nextTurn()
  }
  await withTimeout(done, Number(process.env.BENCH_TIMEOUT_MS ?? 120_000), `convergence on ${server.kind} (observer has ${observer.getText('t').length} of ${trace.endContent.length} characters)`)
  const ms = performance.now() - start
  for (const c of [watch, ...agents.map(a => a.client)]) c.close()
  return { 'time to convergence (ms)': ms, 'final text matches endContent': 1 }
}

export { startServer }
export const tempDataDir = (): string => mkdtempSync(join(tmpdir(), 'petaldb-bench-'))
