/**
 * Figures for hostile updates and stored data, side by side: each case runs against a relay
 * process built from this tree and, when PETALDB_BASELINE names the directory of another
 * build (a checkout of an earlier commit, built with `npm run build`), against that one in
 * the same run. Not part of `npm test` or `npm run bench`.
 *
 *   npm run build && PETALDB_BASELINE=<dir> PETALDB_TRACES=<dir> npx tsx bench/integrity-figures.ts [case...]
 *
 * Cases: sections (ascending client sections, then compaction), self-origin and
 * self-origin-low (an item after its own later id, client 2^40 or 1), twice (a client in
 * two sections), compaction (a self-referencing item
 * with a deletion, then one-character writes), corrupt-snapshot (a stored snapshot whose
 * delete set is cut short), clients (ten 15 MB frames of GC structs of distinct clients),
 * cold-load (the automerge-paper document, connect to synced). `compaction` and
 * `cold-load` need the editing traces (PETALDB_TRACES).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import WebSocket from 'ws'
import * as Y from 'yjs'
import { parseDocId } from '../shared/wire/doc-id.js'
import { decodeYMessage, encodeSyncStep1 } from '../shared/wire/y-messages.js'
import { SqliteStore } from '../shared/storage/sqlite-store.js'
import { relayDatabasePath } from '../server/data-dir.js'
import { craftUpdate, gcStructsOfClients } from '../test/helpers/crafted-updates.js'
import { CLI_PATH } from '../test/helpers/relay-process.js'
import { stockClient, type StockClient } from '../test/helpers/stock-client.js'
import { sendUpdates } from '../test/helpers/update-sender.js'
import { loadTrace, patchesOf } from './traces.js'

type Figures = Record<string, string | number>

const DOC = 'bench/integrity'

interface ChildRelay {
  url: string
  pid: number
  /** Compactions and updates committed so far (from the relay's debug log). */
  compactions(): number
  committed(): number
  exited: Promise<number | string>
  cpuSeconds(): number
  /** Peak resident memory so far, in MB (VmHWM). */
  peakRssMb(): number
  stop(): Promise<void>
}

async function startRelayAt (cli: string, dataDir: string, flags: string[] = []): Promise<ChildRelay> {
  const child: ChildProcess = spawn(process.execPath, [cli, 'relay', '--port', '0', '--data', dataDir, '--log-level', 'debug', ...flags], { stdio: ['ignore', 'pipe', 'pipe'] })
  let compactions = 0
  let committed = 0
  createInterface({ input: child.stderr! }).on('line', line => {
    if (!line.includes('"msg":"commit"')) return
    const info = JSON.parse(line) as { compactions: number, updates: number }
    compactions += info.compactions
    committed += info.updates
  })
  const exited = new Promise<number | string>(resolve => child.once('exit', (code, signal) => resolve(code ?? signal ?? 'exited')))
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', line => {
      const match = /listening on (ws:\/\/\S+)/.exec(line)
      if (match !== null) resolve(match[1]!)
    })
    void exited.then(code => reject(new Error(`relay exited with ${code} before listening`)))
  })
  const status = (field: string): number => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]) / 1024
  let peak = 0
  return {
    url,
    pid: child.pid!,
    compactions: () => compactions,
    committed: () => committed,
    exited,
    cpuSeconds: () => {
      const fields = readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
      return (Number(fields[11]) + Number(fields[12])) / 100
    },
    peakRssMb: () => {
      try {
        peak = Math.max(peak, status('VmHWM'))
      } catch {
        // The process is gone: the last figure seen stands.
      }
      return peak
    },
    stop: async () => {
      child.kill('SIGTERM')
      await exited
    }
  }
}

/** Sends `updates` on a fresh socket: 'stored', 'closed <code>' or 'no answer'. */
async function send (url: string, updates: Uint8Array[], timeoutMs = 120_000): Promise<string> {
  try {
    const answer = await sendUpdates(url, DOC, updates, timeoutMs)
    return answer === 'stored' ? answer : `closed ${answer.code}`
  } catch {
    return 'no answer'
  }
}

/** A stock client's view once synced (or after `timeoutMs`), with the first close code it saw. */
async function freshView (url: string, timeoutMs = 5000): Promise<{ text: string, synced: boolean, closed: number | null, client: StockClient }> {
  const client = stockClient(url, DOC)
  let closed: number | null = null
  client.provider.on('connection-close', event => { closed ??= event?.code ?? null })
  const synced = await client.synced().then(() => true, () => false)
  void timeoutMs
  return { text: client.text.toString(), synced, closed, client }
}

const quote = (text: string): string => JSON.stringify(text.replace(/z{20,}/g, 'z…').replace(/y{20,}/g, 'y…').slice(0, 40))
const until = async (check: () => boolean, timeoutMs: number): Promise<boolean> => {
  const start = Date.now()
  while (!check()) {
    if (Date.now() - start > timeoutMs) return false
    await new Promise(resolve => setTimeout(resolve, 20))
  }
  return true
}

let paper: Uint8Array | null = null
function paperUpdate (): Uint8Array {
  if (paper !== null) return paper
  const doc = new Y.Doc()
  doc.clientID = 1
  const text = doc.getText('t')
  for (const [pos, del, ins] of patchesOf(loadTrace('automerge-paper'))) {
    if (del > 0) text.delete(pos, del)
    if (ins !== '') text.insert(pos, ins)
  }
  return (paper = Y.encodeStateAsUpdate(doc))
}

const cases: Record<string, (cli: string, dataDir: string) => Promise<Figures>> = {
  async sections (cli, dataDir) {
    const relay = await startRelayAt(cli, dataDir)
    const ascending = craftUpdate([100, 200, 300].map((client, i) => ({ client, clock: 0, structs: [{ parent: 't', text: 'abc'[i]! }] })))
    const big = new Y.Doc()
    big.clientID = 5000
    big.getText('t').insert(0, 'z'.repeat(20_000))
    const answer = await send(relay.url, [ascending, Y.encodeStateAsUpdate(big)])
    const compacted = await until(() => relay.compactions() > 0, 10_000)
    const { text, client } = await freshView(relay.url)
    client.destroy()
    await relay.stop()
    return { 'relay answer': answer, 'compacted': String(compacted), 'fresh client after compaction sees': quote(text), 'sections it sees (of 3)': ['a', 'b', 'c'].filter(char => text.includes(char)).length }
  },

  async 'self-origin' (cli, dataDir) {
    return selfOrigin(cli, dataDir, 2 ** 40)
  },

  async 'self-origin-low' (cli, dataDir) {
    return selfOrigin(cli, dataDir, 1)
  },

  async twice (cli, dataDir) {
    const relay = await startRelayAt(cli, dataDir)
    const live = stockClient(relay.url, DOC)
    await live.synced()
    const update = craftUpdate([
      { client: 4242, clock: 0, structs: [{ parent: 't', text: 'AAAA' }] },
      { client: 4242, clock: 0, structs: [{ parent: 't', text: 'BBBB' }] }
    ])
    const answer = await send(relay.url, [update])
    // Another write: the relay merges what it stored before serving a fresh client.
    live.text.insert(0, '+')
    await new Promise(resolve => setTimeout(resolve, 300))
    const fresh = await freshView(relay.url)
    fresh.client.destroy()
    live.destroy()
    await relay.stop()
    return { 'update bytes': update.length, 'relay answer': answer, 'live client sees': quote(live.text.toString()), 'fresh client sees': quote(fresh.text) }
  },

  async compaction (cli, dataDir) {
    const relay = await startRelayAt(cli, dataDir)
    const writer = stockClient(relay.url, DOC)
    await writer.synced()
    Y.applyUpdate(writer.doc, paperUpdate())
    await until(() => relay.compactions() > 0, 30_000)
    // Bring the log just below the snapshot's size (the paper's, once compacted), so that every later write finds compaction due.
    let logged = 0
    let expected = relay.committed()
    writer.doc.on('update', (update: Uint8Array) => { logged += update.length })
    while (logged + 1100 < paperUpdate().length - 1000) {
      writer.text.insert(writer.text.length, 'y'.repeat(1000))
      expected++
    }
    await until(() => relay.committed() >= expected, 120_000)
    const attack = craftUpdate([{ client: 9, clock: 0, structs: [{ origin: [9, 5], text: 'x' }] }], [[9, [[0, 1]]]])
    const answer = await send(relay.url, [attack])
    const compactionsAtAttack = relay.compactions()
    // One larger write makes the log outgrow the snapshot: from then on compaction is due at every write.
    expected = relay.committed() + 1
    writer.text.insert(writer.text.length, 'y'.repeat(5000))
    await until(() => relay.committed() >= expected, 120_000)
    const latencies = pingOtherDocument(relay.url)
    const writes = 100
    const cpuBefore = relay.cpuSeconds()
    expected = relay.committed() + writes
    for (let i = 0; i < writes; i++) {
      writer.text.insert(writer.text.length, 'y')
      await new Promise(resolve => setTimeout(resolve, 30))
    }
    await until(() => relay.committed() >= expected, 300_000)
    const cpuPerWrite = (relay.cpuSeconds() - cpuBefore) / writes * 1000
    const pings = latencies.stop()
    writer.destroy()
    await relay.stop()
    return {
      'attack bytes': attack.length,
      'relay answer': answer,
      'relay CPU per one-character write once compaction is due (ms)': cpuPerWrite.toFixed(2),
      'compactions after the attack': relay.compactions() - compactionsAtAttack,
      'another document, sync round trip p50 / max (ms)': `${pings.p50.toFixed(1)} / ${pings.max.toFixed(1)}`
    }
  },

  async 'corrupt-snapshot' (cli, dataDir) {
    const source = new Y.Doc()
    source.getText('t').insert(0, 'hello world')
    source.getText('t').delete(0, 6)
    const snapshot = Y.encodeStateAsUpdate(source)
    const seed = new SqliteStore(relayDatabasePath(dataDir))
    await seed.compact(parseDocId(DOC), snapshot.slice(0, snapshot.length - 1))
    await seed.close()
    const relay = await startRelayAt(cli, dataDir)
    const view = await freshView(relay.url)
    let afterDelete: number | null = null
    if (view.synced) {
      view.client.provider.on('connection-close', event => { afterDelete ??= event?.code ?? null })
      view.client.text.delete(0, 1)
      await until(() => afterDelete !== null, 3000)
    }
    view.client.destroy()
    await relay.stop()
    return { 'stock client synced': String(view.synced), 'close code on connect': view.closed ?? 'none', 'close code after deleting a character': afterDelete ?? 'none', 'reconnects after it': afterDelete === null ? 'n/a' : afterDelete >= 4400 && afterDelete < 4500 ? 'no' : 'yes' }
  },

  async clients (cli, dataDir) {
    const relay = await startRelayAt(cli, dataDir)
    const perFrame = 1_860_000
    const answers: string[] = []
    let next = 2 ** 21
    const sampler = setInterval(() => relay.peakRssMb(), 100)
    for (let frame = 0; frame < 10; frame++) {
      const update = gcStructsOfClients(next, perFrame)
      next += perFrame
      const answer = await Promise.race([send(relay.url, [update], 600_000), relay.exited.then(code => `relay exited (${code})`)])
      answers.push(answer)
      if (answer.startsWith('relay exited')) break
    }
    clearInterval(sampler)
    const peak = relay.peakRssMb()
    const alive = await Promise.race([relay.exited.then(() => false), new Promise<boolean>(resolve => setTimeout(() => resolve(true), 500))])
    if (alive) await relay.stop()
    return { 'frames (15 MB, 1.86 M clients each)': answers.length, 'answers': summarise(answers), 'relay peak RSS (MB)': Math.round(peak), 'relay survived': String(alive) }
  },

  async 'cold-load' (cli, dataDir) {
    let relay = await startRelayAt(cli, dataDir)
    const writer = stockClient(relay.url, DOC)
    await writer.synced()
    Y.applyUpdate(writer.doc, paperUpdate())
    await until(() => relay.compactions() > 0, 30_000)
    writer.destroy()
    await relay.stop()
    const times: number[] = []
    for (let run = 0; run < 7; run++) {
      relay = await startRelayAt(cli, dataDir)
      const start = performance.now()
      const { client, synced } = await freshView(relay.url)
      if (synced) times.push(performance.now() - start)
      client.destroy()
      await relay.stop()
    }
    times.sort((a, b) => a - b)
    return { 'paper snapshot (KB)': Math.round(paperUpdate().length / 1024), 'connect to synced, median of 7 (ms)': times[times.length >> 1]?.toFixed(1) ?? 'n/a', 'min (ms)': times[0]?.toFixed(1) ?? 'n/a' }
  }
}

/** Round trips (sync step 1 to step 2) on another document every 20 ms, until stopped. */
function pingOtherDocument (url: string): { stop(): { p50: number, max: number } } {
  const times: number[] = []
  const ws = new WebSocket(`${url}/bench/other`)
  let sentAt = 0
  let timer: ReturnType<typeof setTimeout> | null = null
  const ping = (): void => {
    sentAt = performance.now()
    ws.send(encodeSyncStep1(new Uint8Array([0])))
  }
  ws.on('open', ping)
  ws.on('message', (data: Buffer) => {
    if (decodeYMessage(new Uint8Array(data)).type !== 'sync-step2') return
    times.push(performance.now() - sentAt)
    timer = setTimeout(ping, 20)
  })
  return {
    stop () {
      if (timer !== null) clearTimeout(timer)
      ws.terminate()
      times.sort((a, b) => a - b)
      return { p50: times[times.length >> 1] ?? NaN, max: times[times.length - 1] ?? NaN }
    }
  }
}

/** A live client writes 'hello' and deletes 'he'; then an item of `client` whose origin is its own later id (20 bytes for 2^40). */
async function selfOrigin (cli: string, dataDir: string, client: number): Promise<Figures> {
  let relay = await startRelayAt(cli, dataDir)
  const live = stockClient(relay.url, DOC)
  await live.synced()
  live.text.insert(0, 'hello')
  live.text.delete(0, 2)
  await new Promise(resolve => setTimeout(resolve, 300))
  const update = craftUpdate([{ client, clock: 0, structs: [{ origin: [client, 5], text: 'x' }] }])
  const answer = await send(relay.url, [update])
  const fresh = await freshView(relay.url)
  fresh.client.destroy()
  await relay.stop()
  relay = await startRelayAt(cli, dataDir)
  const restarted = await freshView(relay.url)
  restarted.client.destroy()
  live.destroy()
  await relay.stop()
  return { 'update bytes': update.length, 'relay answer': answer, 'live client sees': quote(live.text.toString()), 'fresh client sees': quote(fresh.text), 'fresh client after a restart sees': quote(restarted.text) }
}

const summarise = (answers: string[]): string => [...new Set(answers)].map(answer => `${answers.filter(other => other === answer).length}× ${answer}`).join(', ')

const builds = [
  ...(process.env.PETALDB_BASELINE === undefined ? [] : [{ name: 'before', cli: join(process.env.PETALDB_BASELINE, 'dist/server/cli.js') }]),
  { name: 'after', cli: CLI_PATH }
]
const wanted = process.argv.slice(2)
const rows: string[] = []
for (const name of wanted.length > 0 ? wanted : Object.keys(cases)) {
  const results = new Map<string, Figures>()
  for (const build of builds) {
    const dataDir = mkdtempSync(join(tmpdir(), 'petaldb-integrity-'))
    try {
      results.set(build.name, await cases[name]!(build.cli, dataDir))
    } catch (error) {
      results.set(build.name, { error: (error as Error).message })
    } finally {
      rmSync(dataDir, { recursive: true, force: true })
    }
    process.stderr.write(`${name} ${build.name}: ${JSON.stringify(results.get(build.name))}\n`)
  }
  const figures = [...new Set([...results.values()].flatMap(figure => Object.keys(figure)))]
  for (const figure of figures) rows.push(`| ${name} | ${figure} | ${builds.map(build => String(results.get(build.name)?.[figure] ?? '')).join(' | ')} |`)
}
console.log([`| case | figure | ${builds.map(build => build.name).join(' | ')} |`, `|---|---|${builds.map(() => '---').join('|')}|`, ...rows].join('\n'))
process.exit(0)
