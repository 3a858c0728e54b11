/**
 * A relay in a child process, started from the built CLI exactly as users start it, so
 * that tests can kill it with SIGKILL. Its debug log (JSON lines on stderr) is parsed to
 * observe commits without sleeping.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { EventEmitter } from 'node:events'
import { readdirSync } from 'node:fs'
import { get } from 'node:http'
import { fileURLToPath } from 'node:url'
import { createServer, type AddressInfo } from 'node:net'
import { createInterface } from 'node:readline'
import { until } from './events.js'

export const CLI_PATH = fileURLToPath(new URL('../../dist/server/cli.js', import.meta.url))

export interface RelayProcess {
  url: string
  child: ChildProcess
  /** Updates committed to disk since this process started. */
  committedUpdates(): number
  /** Resolves once at least `n` updates were committed since this process started. */
  waitForCommitted(n: number, timeoutMs?: number): Promise<void>
  /** Sends `signal` and resolves with the exit code (or the signal that ended it). */
  stop(signal?: NodeJS.Signals): Promise<number | NodeJS.Signals>
  /** Log lines (parsed) seen so far. */
  logs: Array<Record<string, unknown>>
  /** Resolves with the first log entry whose message is `msg` (or that `msg` accepts). */
  waitForLog(msg: string | ((entry: Record<string, unknown>) => boolean), timeoutMs?: number): Promise<Record<string, unknown>>
}

/** Milliseconds for `GET <base>/healthz` to answer 200 on a new connection; Infinity if it fails or takes over `timeoutMs`. */
export function healthzMs (base: string, timeoutMs: number): Promise<number> {
  const started = performance.now()
  return new Promise(resolve => {
    const req = get(`${base}/healthz`, { agent: false, timeout: timeoutMs }, res => {
      res.resume()
      res.on('end', () => resolve(res.statusCode === 200 ? performance.now() - started : Infinity))
    })
    req.on('timeout', () => req.destroy())
    req.on('error', () => resolve(Infinity))
  })
}

/** File descriptors process `pid` has open (NaN once it is gone). */
export function openFds (pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length
  } catch {
    return NaN
  }
}

/** A port that was free a moment ago (for a relay that must start later at a known URL). */
export function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo
      server.close(() => resolve(port))
    })
  })
}

/**
 * Starts a relay on `port` with its data in `dataDir` (null: none, for a relay whose arguments
 * name other storage), from the CLI at `cli` (another build's, for benchmarks comparing them);
 * with `fdLimit`, under that open-file limit (`ulimit -n` in a shell that then becomes the
 * relay, so the child's pid is the relay's).
 */
export async function startRelayProcess (dataDir: string | null, extraArgs: string[] = [], port = 0, cli = CLI_PATH, { fdLimit }: { fdLimit?: number } = {}): Promise<RelayProcess> {
  const command = [process.execPath, cli, 'relay', '--port', String(port), ...(dataDir === null ? [] : ['--data', dataDir]), '--log-level', 'debug', ...extraArgs]
  const child = fdLimit === undefined
    ? spawn(command[0]!, command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn('bash', ['-c', `ulimit -n ${fdLimit} && exec "$0" "$@"`, ...command], { stdio: ['ignore', 'pipe', 'pipe'] })
  const events = new EventEmitter()
  const logs: Array<Record<string, unknown>> = []
  let committed = 0
  createInterface({ input: child.stderr! }).on('line', line => {
    let entry: Record<string, unknown>
    try {
      entry = JSON.parse(line)
    } catch {
      entry = { msg: line }
    }
    logs.push(entry)
    if (entry.msg === 'commit') committed += entry.updates as number
    events.emit('log')
  })
  const exited = new Promise<number | NodeJS.Signals>(resolve => child.once('exit', (code, signal) => resolve(code ?? signal!)))
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', line => {
      const match = /listening on (ws:\/\/\S+)/.exec(line)
      if (match) resolve(match[1]!)
    })
    exited.then(code => reject(new Error(`relay exited with ${code} before listening: ${JSON.stringify(logs.slice(-3))}`)))
  })
  return {
    url,
    child,
    logs,
    committedUpdates: () => committed,
    waitForLog: async (msg, timeoutMs) => {
      const find = (): Record<string, unknown> | undefined => logs.find(typeof msg === 'string' ? entry => entry.msg === msg : msg)
      await until(`log "${typeof msg === 'string' ? msg : msg.toString()}"`, cb => { events.on('log', cb); return () => events.off('log', cb) }, () => find() !== undefined, timeoutMs)
      return find()!
    },
    waitForCommitted: (n, timeoutMs) => until(`${n} committed updates (have ${committed})`,
      cb => { events.on('log', cb); return () => events.off('log', cb) }, () => committed >= n, timeoutMs),
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      return exited
    }
  }
}
