/**
 * `npx tsx bench/heap-split.ts [server kind] [documents]`: what a server keeps per open idle
 * document, by object kind. It runs the many-documents scenario (compare.ts) against one
 * server (default petaldb, 1,000 documents) with heap snapshots taken before the clients
 * connect and once the documents are idle, and prints, per document, the size of the
 * objects that appeared in between, grouped by constructor (or closure name, or V8 type),
 * largest first. Snapshots collect garbage first, so only live objects count.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { manyDocuments, tempDataDir } from './compare.js'
import { startServer, type ServerKind } from './servers.js'

const kind = (process.argv[2] ?? 'petaldb') as ServerKind
const documents = Number(process.argv[3] ?? 1000)
const probeDir = mkdtempSync(join(tmpdir(), 'petaldb-heap-'))
process.env.HEAP_PROBE_DIR = probeDir
process.env.BENCH_NODE_FLAGS = `${process.env.BENCH_NODE_FLAGS ?? ''} --import ${fileURLToPath(new URL('./servers/heap-probe.mjs', import.meta.url))}`

interface Snapshot {
  snapshot: { meta: { node_fields: string[], node_types: [string[]] } }
  nodes: number[]
  strings: string[]
}

let taken = 0
/** Asks the server for a heap snapshot (see servers/heap-probe.mjs) and reads it once written. */
async function snapshot (pid: number): Promise<Snapshot> {
  const base = join(probeDir, String(taken++))
  process.kill(pid, 'SIGUSR1')
  while (!existsSync(`${base}.done`)) await new Promise(resolve => setTimeout(resolve, 200))
  return JSON.parse(readFileSync(`${base}.heapsnapshot`, 'utf8')) as Snapshot
}

/** Bytes and counts of the objects of `after` that `before` lacks, by kind. */
function grown (before: Snapshot, after: Snapshot): Map<string, { bytes: number, count: number }> {
  const fields = after.snapshot.meta.node_fields
  const stride = fields.length
  const [type, name, id, size] = ['type', 'name', 'id', 'self_size'].map(field => fields.indexOf(field)) as [number, number, number, number]
  const types = after.snapshot.meta.node_types[0]
  const old = new Set<number>()
  for (let at = 0; at < before.nodes.length; at += stride) old.add(before.nodes[at + id]!)
  const kinds = new Map<string, { bytes: number, count: number }>()
  for (let at = 0; at < after.nodes.length; at += stride) {
    if (old.has(after.nodes[at + id]!)) continue
    const nodeType = types[after.nodes[at + type]!]!
    const nodeName = after.strings[after.nodes[at + name]!]!
    const label = nodeType === 'object' || nodeType === 'closure' || nodeType === 'native' || process.env.HEAP_SPLIT_NAMES === '1'
      ? `${nodeType} ${nodeName.slice(0, 60)}`
      : nodeType
    const entry = kinds.get(label) ?? { bytes: 0, count: 0 }
    entry.bytes += after.nodes[at + size]!
    entry.count++
    kinds.set(label, entry)
  }
  return kinds
}

const dataDir = tempDataDir()
const server = await startServer(kind, dataDir)
try {
  const before = await snapshot(server.pid)
  let after: Snapshot | null = null
  const figures = await manyDocuments(server, documents, 5, async () => { after = await snapshot(server.pid) })
  console.log(JSON.stringify(figures))
  const kinds = [...grown(before, after!).entries()].sort((a, b) => b[1].bytes - a[1].bytes)
  const total = kinds.reduce((sum, [, { bytes }]) => sum + bytes, 0)
  console.log(`objects new since the baseline: ${(total / documents / 1024).toFixed(2)} KiB per document`)
  console.log('| bytes per document | objects per document | kind |\n|---|---|---|')
  for (const [label, { bytes, count }] of kinds.slice(0, 60)) {
    console.log(`| ${(bytes / documents).toFixed(0)} | ${(count / documents).toFixed(2)} | ${label} |`)
  }
} finally {
  await server.stop()
  rmSync(dataDir, { recursive: true, force: true })
  if (process.env.HEAP_SPLIT_KEEP === '1') console.log(`snapshots kept in ${probeDir}`)
  else rmSync(probeDir, { recursive: true, force: true })
}
