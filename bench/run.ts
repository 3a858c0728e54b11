/**
 * `npm run bench [-- scenario...]`: runs benchmark scenarios and prints their figures.
 * Not part of `npm test`. Traces are read from PETALDB_TRACES (see traces.ts).
 */
import { openManyIndexedDb, openManySqlite, replicaTrace } from './replica-figures.js'
import { traceReplay } from './trace-replay.js'
import { failover, rebalance, writeThroughput } from './cluster-figures.js'

const scenarios: Record<string, () => Promise<Record<string, number | string>>> = {
  'trace-replay': () => traceReplay('automerge-paper'),
  'open-1000-sqlite': openManySqlite,
  'open-1000-indexeddb': openManyIndexedDb,
  'replica-trace': replicaTrace,
  'cluster-failover': () => failover(20),
  'cluster-throughput': writeThroughput,
  'cluster-rebalance': () => rebalance(1000)
}

const wanted = process.argv.slice(2)
const unknown = wanted.filter(name => !(name in scenarios))
if (unknown.length > 0) {
  console.error(`unknown scenario(s): ${unknown.join(', ')}; known: ${Object.keys(scenarios).join(', ')}`)
  process.exit(2)
}
const machine = `Node ${process.version}, ${process.platform}/${process.arch}`
console.log(`# PetalDB benchmarks (${new Date().toISOString().slice(0, 10)}, ${machine})\n`)
for (const name of wanted.length > 0 ? wanted : Object.keys(scenarios)) {
  const figures = await scenarios[name]!()
  console.log(`## ${name}\n\n| figure | value |\n|---|---|`)
  for (const [key, value] of Object.entries(figures)) console.log(`| ${key} | ${value} |`)
  console.log()
}
process.exit(0)
