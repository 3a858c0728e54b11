/**
 * Peer-to-peer figures: edit-to-remote-update latency between two Node replicas peer to
 * peer and through a relay (a separate process), between two Chromium tabs over
 * BroadcastChannel and through a relay, and between two Chromium contexts over WebRTC and
 * through a relay; and the time a chain of five Node peers takes to converge on the
 * friendsforever trace. Latency is measured as half a round trip (one side edits, the
 * other answers with an edit when it sees it), so no clocks need comparing.
 */
import { join } from 'node:path'
import * as Y from 'yjs'
import { Replica } from '../client/replica.js'
import { listenForPeers, SqliteStore } from '../client/node.js'
import { bundlePage, launchBrowser, launchChromium, servePage } from '../test/helpers/browser.js'
import { startRelayProcess } from '../test/helpers/relay-process.js'
import { loadTrace } from './traces.js'
import { answerPings, ping } from '../test/browser/pages/ping-pong.js'
import { percentile, round, withTempDir } from './stats.js'

const ROUND_TRIPS = 400
const WARM_UP = 20


function summary (label: string, halfTrips: number[]): Record<string, number> {
  const sorted = halfTrips.slice(WARM_UP).sort((a, b) => a - b)
  return { [`${label} p50 (ms)`]: round(percentile(sorted, 0.5), 2), [`${label} p99 (ms)`]: round(percentile(sorted, 0.99), 2) }
}

/** Half round trips from `from` to `to` (see test/browser/pages/ping-pong.ts). */
async function pingPong (from: Y.Doc, to: Y.Doc, trips: number): Promise<number[]> {
  const stop = answerPings(to)
  try {
    return await ping(from, trips)
  } finally {
    stop()
  }
}

/** Two Node replicas (SQLite), peer to peer and through a relay process. */
export function nodePeerLatency (): Promise<Record<string, number | string>> {
  return withTempDir(async dir => {
    const a = new Replica({ store: new SqliteStore(join(dir, 'a.db')) })
    const server = await listenForPeers(a, { open: true })
    const b = new Replica({ store: new SqliteStore(join(dir, 'b.db')), peers: [server.url] })
    const [docA, docB] = await Promise.all([a.open('latency/p2p'), b.open('latency/p2p')])
    const p2p = await pingPong(docB, docA, ROUND_TRIPS)
    await Promise.all([b.close(), server.close(), a.close()])

    const relay = await startRelayProcess(join(dir, 'relay'))
    const c = new Replica({ store: new SqliteStore(join(dir, 'c.db')), relays: [relay.url] })
    const d = new Replica({ store: new SqliteStore(join(dir, 'd.db')), relays: [relay.url] })
    const [docC, docD] = await Promise.all([c.open('latency/relay'), d.open('latency/relay')])
    await Promise.all([c.doc('latency/relay').synced(), d.doc('latency/relay').synced()])
    const relayed = await pingPong(docD, docC, ROUND_TRIPS)
    await Promise.all([c.close(), d.close()])
    await relay.stop()
    const figures = { ...summary('peer to peer', p2p), ...summary('through a relay', relayed) }
    return { ...figures, 'p50 ratio peer to peer / relay': round(figures['peer to peer p50 (ms)']! / figures['through a relay p50 (ms)']!, 2) }
  })
}

/**
 * friendsforever through a chain of five Node peers: agent 0 types at one end, agent 1
 * at the other; each transaction is applied once its parents have arrived at that end.
 */
export function chainConvergence (): Promise<Record<string, number | string>> {
  const trace = loadTrace('friendsforever') as unknown as { endContent: string, txns: Array<{ parents: number[], agent: number, patches: Array<[number, number, string]> }> }
  return withTempDir(async dir => {
    const replicas: Replica[] = []
    const servers: Array<Awaited<ReturnType<typeof listenForPeers>>> = []
    for (let i = 0; i < 5; i++) {
      const replica = new Replica({ store: new SqliteStore(join(dir, `chain-${i}.db`)), peers: servers.length === 0 ? [] : [servers[servers.length - 1]!.url] })
      replicas.push(replica)
      servers.push(await listenForPeers(replica, { open: true }))
    }
    const docs = await Promise.all(replicas.map(r => r.open('chain/trace')))
    const ends = [docs[0]!, docs[4]!]
    // Each agent types into a replay document holding its own transactions and, of the
    // other's, only those it has seen (its parents), exactly as the trace was recorded; every
    // transaction then enters that agent's replica as a local change. Yjs orders concurrent
    // insertions at one position by client id; endContent has agent 0's first.
    const firstClientId = 1 + Math.floor(Math.random() * 2 ** 30)
    const agents = [0, 1].map(agent => {
      const replay = new Y.Doc()
      replay.clientID = firstClientId + agent
      return { replay, replica: ends[agent]!, updates: [] as Uint8Array[], applied: 0 }
    })
    const clockAfter = trace.txns.map(() => 0)
    const ordinal = trace.txns.map(() => 0)
    const clockOf = (doc: Y.Doc, client: number): number => Y.decodeStateVector(Y.encodeStateVector(doc)).get(client) ?? 0
    const start = performance.now()
    for (const [index, txn] of trace.txns.entries()) {
      const self = agents[txn.agent]!
      const other = agents[1 - txn.agent]!
      for (const parent of txn.parents) {
        if (trace.txns[parent]!.agent === txn.agent) continue
        // Wait until the parent has come down the chain to this end, then take it (and what came before it).
        const needed = clockAfter[parent]!
        if (clockOf(self.replica, other.replay.clientID) < needed) {
          await new Promise<void>(resolve => {
            const check = (): void => { if (clockOf(self.replica, other.replay.clientID) >= needed) { self.replica.off('update', check); resolve() } }
            self.replica.on('update', check)
          })
        }
        while (self.applied <= ordinal[parent]!) Y.applyUpdate(self.replay, other.updates[self.applied++]!, 'merge')
      }
      let update: Uint8Array | null = null
      const capture = (u: Uint8Array, origin: unknown): void => { if (origin !== 'merge') update = u }
      self.replay.on('update', capture)
      self.replay.transact(() => {
        const text = self.replay.getText('t')
        for (const [pos, del, ins] of txn.patches) {
          if (del > 0) text.delete(pos, del)
          if (ins !== '') text.insert(pos, ins)
        }
        self.replay.getMap('marker').set(String(txn.agent), index)
      })
      self.replay.off('update', capture)
      clockAfter[index] = clockOf(self.replay, self.replay.clientID)
      ordinal[index] = self.updates.length
      self.updates.push(update!)
      Y.applyUpdate(self.replica, update!)
      if (index % 100 === 0) await new Promise(resolve => setImmediate(resolve))
    }
    const converged = (): boolean => docs.every(doc => doc.getText('t').length === trace.endContent.length && doc.getText('t').toString() === trace.endContent)
    await new Promise<void>(resolve => {
      if (converged()) return resolve()
      const check = (): void => { if (converged()) { for (const doc of docs) doc.off('update', check); resolve() } }
      for (const doc of docs) doc.on('update', check)
    })
    const ms = performance.now() - start
    await Promise.all(servers.map(server => server.close()))
    await Promise.all(replicas.map(replica => replica.close()))
    return { replicas: 5, transactions: trace.txns.length, 'time to convergence at all five (ms)': round(ms, 2), 'every replica matches endContent': 'yes' }
  })
}

/** Half round trips between two pages, each with its document as `window.doc`. */
async function pagePingPong (from: import('playwright-core').Page, to: import('playwright-core').Page, trips: number): Promise<number[]> {
  await to.evaluate(() => { (globalThis as any).petal.answerPings((window as any).doc) })
  return await from.evaluate(async (trips) => await (globalThis as any).petal.ping((window as any).doc, trips), trips)
}

async function openInPage (page: import('playwright-core').Page, url: string, db: string, docId: string, options: Record<string, unknown>): Promise<void> {
  await page.goto(url)
  await page.waitForFunction(() => typeof (globalThis as { petal?: unknown }).petal !== 'undefined')
  await page.evaluate(async ({ db, docId, options }) => {
    const { Replica, IndexedDbStore } = (globalThis as any).petal
    ;(window as any).replica = new Replica({ store: new IndexedDbStore({ name: db }), ...options })
    ;(window as any).doc = await (window as any).replica.open(docId)
  }, { db, docId, options })
}

/** Two Chromium tabs of one origin: over BroadcastChannel, and through a relay process. */
export function tabLatency (): Promise<Record<string, number | string>> {
  return withTempDir(async dir => {
    const server = await servePage(await bundlePage())
    const browser = await launchChromium()
    const relay = await startRelayProcess(join(dir, 'relay'))
    try {
      const [one, two] = await Promise.all([browser.context.newPage(), browser.context.newPage()])
      await openInPage(one, server.url, 'bench-tabs', 'tabs/bc', {})
      await openInPage(two, server.url, 'bench-tabs', 'tabs/bc', {})
      const channel = await pagePingPong(one, two, ROUND_TRIPS)
      const [three, four] = await Promise.all([browser.context.newPage(), browser.context.newPage()])
      await openInPage(three, server.url, 'bench-relay-3', 'tabs/relay', { tabs: false, relays: [relay.url] })
      await openInPage(four, server.url, 'bench-relay-4', 'tabs/relay', { tabs: false, relays: [relay.url] })
      await Promise.all([three, four].map(page => page.evaluate(() => (window as any).replica.doc('tabs/relay').synced())))
      const relayed = await pagePingPong(three, four, ROUND_TRIPS)
      const figures = { ...summary('tab to tab over BroadcastChannel', channel), ...summary('tab to tab through a relay', relayed) }
      return { ...figures, 'p50 ratio BroadcastChannel / relay': round(figures['tab to tab over BroadcastChannel p50 (ms)']! / figures['tab to tab through a relay p50 (ms)']!, 2) }
    } finally {
      await relay.stop()
      await browser.close()
      await server.close()
    }
  })
}

/** Two Chromium contexts (two devices): through a relay process, then over WebRTC with the relay stopped. */
export function webrtcLatency (): Promise<Record<string, number | string>> {
  return withTempDir(async dir => {
    const server = await servePage(await bundlePage())
    const browser = await launchBrowser()
    const relay = await startRelayProcess(join(dir, 'relay'))
    try {
      const pages = await Promise.all([0, 1].map(async () => await (await browser.newContext()).newPage()))
      for (const page of pages) await openInPage(page, server.url, 'device', 'rtc/relay', { relays: [relay.url] })
      await Promise.all(pages.map(page => page.evaluate(() => (window as any).replica.doc('rtc/relay').synced())))
      const relayed = await pagePingPong(pages[0]!, pages[1]!, ROUND_TRIPS)
      const direct = await Promise.all([0, 1].map(async () => await (await browser.newContext()).newPage()))
      for (const page of direct) await openInPage(page, server.url, 'device', 'rtc/direct', { relays: [relay.url], webrtc: true })
      for (const page of direct) await page.waitForFunction(() => (window as any).replica.doc('rtc/direct').peers.some((peer: { isRelay: boolean, state: string }) => !peer.isRelay && peer.state === 'acked'), undefined, { timeout: 20_000 })
      await relay.stop()
      const rtc = await pagePingPong(direct[0]!, direct[1]!, ROUND_TRIPS)
      const figures = { ...summary('WebRTC', rtc), ...summary('through a relay', relayed) }
      return { ...figures, 'p50 ratio WebRTC / relay': round(figures['WebRTC p50 (ms)']! / figures['through a relay p50 (ms)']!, 2) }
    } finally {
      await relay.stop().catch(() => {})
      await browser.close()
      await server.close()
    }
  })
}
