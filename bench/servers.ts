/**
 * Servers under benchmark, each in its own process, pinned to the last core when `taskset`
 * is available (the load generator is pinned to the first): PetalDB's relay with durable
 * storage (SQLite, or PostgreSQL on a throwaway server whose processes are not pinned), the
 * reference y-websocket server, Hocuspocus and a bare ws broadcast server.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { cpus } from 'node:os'
import { readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { CLI_PATH, freePort } from '../test/helpers/relay-process.js'
import { benchDatabase } from './postgres.js'

export type ServerKind = 'petaldb' | 'petaldb-postgres' | 'baseline' | 'reference' | 'hocuspocus' | 'bare'

/**
 * PETALDB_BASELINE: the directory of another build of PetalDB (a checkout of an earlier
 * commit, built with `npm run build`), benchmarked as server kind `baseline` beside this
 * tree's relay, in the same run, to measure what a change costs.
 */
export const BASELINE = process.env.PETALDB_BASELINE

/** Which wire protocol a server's clients speak. */
export const protocolOf = (kind: ServerKind): 'yws' | 'hocuspocus' | 'bare' => kind === 'hocuspocus' ? 'hocuspocus' : kind === 'bare' ? 'bare' : 'yws'

export interface BenchServer {
  kind: ServerKind
  url: string
  pid: number
  /** Resident memory of the server process, in bytes. */
  rssBytes(): number
  /** CPU time used by the server process so far, in seconds. */
  cpuSeconds(): number
  /** Live memory after a full garbage collection: V8 heap in use plus memory held outside it (buffers), in bytes. */
  liveBytes(): Promise<number>
  stop(): Promise<void>
}

const MAIN = fileURLToPath(new URL('./servers/main.ts', import.meta.url))
const MEMORY_PROBE = fileURLToPath(new URL('./servers/memory-probe.mjs', import.meta.url))
const TASKSET = spawnSync('taskset', ['--version']).status === 0
const SERVER_CORE = String(cpus().length - 1)

/**
 * Pins this (load generator) process to the first core, when possible, or (with `pin`
 * false) lets it and the processes it starts use every core again.
 */
export function pinLoadGenerator (pin = true): string {
  if (!TASKSET || cpus().length < 2) return 'not pinned (taskset unavailable or one core)'
  spawnSync('taskset', ['-cp', pin ? '0' : `0-${cpus().length - 1}`, String(process.pid)])
  return pin ? `load generator on core 0, server on core ${SERVER_CORE}` : 'not pinned'
}

/** Relay flags that lift the per-connection limits: the peers have none, and benchmarks measure throughput. */
export const UNLIMITED = ['--max-messages-per-second', '100000000', '--max-bytes-per-second', '100000000000', '--max-connections-per-ip', '100000', '--max-waiting-bytes', '1000000000']

async function command (kind: ServerKind, port: number, dataDir: string, persist: boolean): Promise<string[]> {
  const cli = kind === 'baseline' ? baselineCli() : CLI_PATH
  const relay = [cli, 'relay', '--port', String(port), '--log-level', process.env.BENCH_LOG_LEVEL ?? 'warn', ...unlimitedFor(cli)]
  if (kind === 'petaldb' || kind === 'baseline') return [...relay, '--data', dataDir]
  // One database per data directory: a relay restarted on it finds what it stored.
  if (kind === 'petaldb-postgres') return [...relay, '--postgres', await benchDatabase(dataDir), '--id', 'bench']
  return ['--import', 'tsx', MAIN, kind, String(port), dataDir, ...(persist ? ['--persist'] : [])]
}

function baselineCli (): string {
  if (BASELINE === undefined) throw new Error('server kind "baseline" needs PETALDB_BASELINE (the directory of another build)')
  return join(BASELINE, 'dist', 'server', 'cli.js')
}

/** {@link UNLIMITED} as `cli` spells it (`--max-waiting-bytes` was `--max-pending-bytes` in earlier builds). */
function unlimitedFor (cli: string): string[] {
  if (cli === CLI_PATH) return UNLIMITED
  const help = spawnSync(process.execPath, [cli, 'relay', '--help'], { encoding: 'utf8' }).stdout
  return UNLIMITED.map(flag => flag === '--max-waiting-bytes' && !help.includes(flag) ? '--max-pending-bytes' : flag)
}

/** Starts a server of `kind` with its data under `dataDir` (Hocuspocus persists only with `persist`). */
export async function startServer (kind: ServerKind, dataDir: string, persist = false): Promise<BenchServer> {
  const port = await freePort()
  // BENCH_NODE_FLAGS: extra flags for the server's node, e.g. `--cpu-prof` to profile it.
  const args = ['--expose-gc', '--import', MEMORY_PROBE, ...(process.env.BENCH_NODE_FLAGS?.split(' ').filter(Boolean) ?? []), ...await command(kind, port, dataDir, persist)]
  const child: ChildProcess = TASKSET
    ? spawn('taskset', ['-c', SERVER_CORE, process.execPath, ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
    : spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] })
  const probes: Array<(bytes: number) => void> = []
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', line => {
      if (line.startsWith('{"probe":"memory"')) {
        const { heapUsed, external } = JSON.parse(line) as { heapUsed: number, external: number }
        probes.shift()?.(heapUsed + external)
      } else if (/listening/.test(line)) {
        resolve()
      }
    })
    child.once('exit', code => reject(new Error(`${kind} server exited with ${code} before listening`)))
  })
  const pid = child.pid!
  const exited = new Promise<void>(resolve => child.once('exit', () => resolve()))
  return {
    kind,
    url: `ws://127.0.0.1:${port}`,
    pid,
    rssBytes: () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024,
    cpuSeconds: () => {
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
      return (Number(fields[11]) + Number(fields[12])) / 100
    },
    liveBytes: () => new Promise(resolve => {
      probes.push(resolve)
      child.kill('SIGUSR2')
    }),
    stop: async () => {
      child.kill('SIGTERM')
      await exited
    }
  }
}
