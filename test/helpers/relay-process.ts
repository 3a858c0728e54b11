/**
 * The one harness for relays in child processes, started from the built CLI exactly as users
 * start them, so that tests can kill them with SIGKILL: a relay waits for its "listening"
 * line (the URL), parses its debug log (JSON lines on stderr) to observe commits without
 * sleeping, and stops, is killed or restarts on its port. Groups of relays (a cluster, relays
 * on one PostgreSQL database) build on `relayGroup`; CLI commands that run to their exit on
 * `spawnCli` (see petaldb-cli.ts).
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process'
import { EventEmitter } from 'node:events'
import { readdirSync } from 'node:fs'
import { get } from 'node:http'
import { fileURLToPath } from 'node:url'
import { createServer, type AddressInfo } from 'node:net'
import { createInterface } from 'node:readline'
import type { Readable } from 'node:stream'
import { until } from './events.js'

export const CLI_PATH = fileURLToPath(new URL('../../dist/server/cli.js', import.meta.url))

export interface RelayProcess {
  url: string
  /** The port it listens on (the one it chose when started on port 0). */
  port: number
  child: ChildProcessByStdio<null, Readable, Readable>
  /** Updates committed to disk since this process started. */
  committedUpdates(): number
  /** Resolves once at least `n` updates were committed since this process started. */
  waitForCommitted(n: number, timeoutMs?: number): Promise<void>
  /** Sends `signal` and resolves with the exit code (or the signal that ended it). */
  stop(signal?: NodeJS.Signals): Promise<number | NodeJS.Signals>
  /** kill -9. */
  kill(): Promise<number | NodeJS.Signals>
  /** Stops it with `signal` (default SIGKILL), then starts it again with the same arguments on the same port. */
  restart(signal?: NodeJS.Signals): Promise<RelayProcess>
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

export interface CliOptions {
  /** The CLI to run (another build's, for benchmarks comparing them). */
  cli?: string
  env?: NodeJS.ProcessEnv
  /** Runs it under this open-file limit (`ulimit -n` in a shell that then becomes the CLI, so the child's pid is the CLI's). */
  fdLimit?: number
}

/** Starts `petaldb ...args` from the built CLI with its stdout and stderr piped. */
export function spawnCli (args: string[], { cli = CLI_PATH, env = process.env, fdLimit }: CliOptions = {}): ChildProcessByStdio<null, Readable, Readable> {
  const command = [process.execPath, cli, ...args]
  return fdLimit === undefined
    ? spawn(command[0]!, command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env })
    : spawn('bash', ['-c', `ulimit -n ${fdLimit} && exec "$0" "$@"`, ...command], { stdio: ['ignore', 'pipe', 'pipe'], env })
}

/**
 * Starts a relay on `port` with its data in `dataDir` (null: none, for a relay whose arguments
 * name other storage), from the CLI at `cli` (another build's, for benchmarks comparing them);
 * with `fdLimit`, under that open-file limit.
 */
export function startRelayProcess (dataDir: string | null, extraArgs: string[] = [], port = 0, cli = CLI_PATH, { fdLimit }: { fdLimit?: number } = {}): Promise<RelayProcess> {
  const args = (port: number): string[] => ['relay', '--port', String(port), ...(dataDir === null ? [] : ['--data', dataDir]), '--log-level', 'debug', ...extraArgs]
  return launchRelay(args, port, { cli, fdLimit })
}

/** Starts the relay that `args(port)` describes and resolves once it listens. */
async function launchRelay (args: (port: number) => string[], port: number, options: CliOptions): Promise<RelayProcess> {
  const child = spawnCli(args(port), options)
  const events = new EventEmitter()
  const logs: Array<Record<string, unknown>> = []
  let committed = 0
  createInterface({ input: child.stderr }).on('line', line => {
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
    createInterface({ input: child.stdout }).on('line', line => {
      const match = /listening on (ws:\/\/\S+)/.exec(line)
      if (match) resolve(match[1]!)
    })
    exited.then(code => reject(new Error(`relay exited with ${code} before listening: ${JSON.stringify(logs.slice(-3))}`)))
  })
  const stop = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<number | NodeJS.Signals> => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal)
    return exited
  }
  const listening = Number(new URL(url).port)
  return {
    url,
    port: listening,
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
    stop,
    kill: () => stop('SIGKILL'),
    restart: async (signal = 'SIGKILL') => {
      await stop(signal)
      return launchRelay(args, listening, options)
    }
  }
}

/** A member of a group of relay processes: it keeps its port across restarts. */
export interface GroupRelay {
  id: string
  port: number
  url: string
  /** The running process (null while it is stopped). */
  process: RelayProcess | null
}

export interface RelayGroup<R extends GroupRelay> {
  relays: R[]
  byId(id: string): R
  /** Adds a member on a free port (not started). */
  add(id: string): Promise<R>
  /** Starts (or restarts, after kill -9) relay `id`, adding it if it is new. */
  start(id: string): Promise<RelayProcess>
  /** kill -9 of relay `id`. */
  kill(id: string): Promise<void>
  /** Stops every relay (default SIGKILL; SIGTERM commits what is pending first). */
  stopAll(signal?: NodeJS.Signals): Promise<void>
  /** Removes a member (killing it first). */
  remove(id: string): Promise<void>
}

/**
 * Relay processes by id, each on a port of its own: `member` describes a new one on `port`,
 * `launch` starts it (with the arguments it has at that moment, which may name the others).
 */
export function relayGroup<R extends GroupRelay> (member: (id: string, port: number) => R, launch: (relay: R) => Promise<RelayProcess>): RelayGroup<R> {
  const relays: R[] = []
  const byId = (id: string): R => {
    const relay = relays.find(r => r.id === id)
    if (relay === undefined) throw new Error(`no relay ${id}`)
    return relay
  }
  const group: RelayGroup<R> = {
    relays,
    byId,
    async add (id) {
      const relay = member(id, await freePort())
      relays.push(relay)
      return relay
    },
    async start (id) {
      const relay = relays.find(r => r.id === id) ?? await group.add(id)
      await relay.process?.kill()
      relay.process = await launch(relay)
      return relay.process
    },
    async kill (id) {
      const relay = byId(id)
      await relay.process?.kill()
      relay.process = null
    },
    async stopAll (signal = 'SIGKILL') {
      await Promise.all(relays.map(r => r.process?.stop(signal)))
      for (const r of relays) r.process = null
    },
    async remove (id) {
      await group.kill(id)
      relays.splice(relays.indexOf(byId(id)), 1)
    }
  }
  return group
}
