/**
 * What a user starting relays from the command line hits: a data directory held by another
 * relay, a port in use or out of range, a data directory that cannot be written, an empty
 * cluster secret file, and the dev cluster when one of its relays dies. Each gets one line
 * naming the problem and a non-zero exit, never a stack trace.
 */
import { spawn } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { afterEach, describe, expect, it } from 'vitest'
import { CLI_PATH, freePort, startRelayProcess, type RelayProcess } from '../helpers/relay-process.js'
import { stockClient } from '../helpers/stock-client.js'
import { tempDir } from '../helpers/temp.js'
import { until } from '../helpers/events.js'

const root = tempDir()
let n = 0
const fresh = (name: string): string => join(root, `${name}-${n++}`)
const relays: RelayProcess[] = []
afterEach(async () => { await Promise.all(relays.splice(0).map(r => r.stop('SIGKILL'))) })

async function relay (dataDir: string, args: string[] = []): Promise<RelayProcess> {
  const r = await startRelayProcess(dataDir, args)
  relays.push(r)
  return r
}

/** Runs `petaldb ...args` to its exit: the exit code and what it printed on stderr. */
function run (args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number | null, stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI_PATH, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env })
    let stderr = ''
    child.stderr.on('data', chunk => { stderr += String(chunk) })
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`petaldb ${args.join(' ')} did not exit within 10 s`)) }, 10_000)
    child.once('exit', code => { clearTimeout(timer); resolve({ code, stderr }) })
  })
}

/** The one line a failure prints (pino's JSON log lines aside). */
function failureLine (stderr: string): string {
  const lines = stderr.split('\n').filter(line => line !== '' && !line.startsWith('{'))
  expect(lines).toHaveLength(1)
  expect(lines[0]).toMatch(/^petaldb: /)
  return lines[0]!
}

describe('the relay command line', () => {
  it('prints the same flags as the README lists', async () => {
    const help = await new Promise<string>((resolve, reject) => {
      const child = spawn(process.execPath, [CLI_PATH, 'relay', '--help'], { stdio: ['ignore', 'pipe', 'ignore'] })
      let out = ''
      child.stdout.on('data', chunk => { out += String(chunk) })
      child.once('exit', code => code === 0 ? resolve(out) : reject(new Error(`--help exited with ${code}`)))
    })
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')
    const start = readme.indexOf('```\nUsage: petaldb relay [flags]')
    expect(start).toBeGreaterThan(0)
    expect(readme.slice(start + 4, readme.indexOf('```', start + 4))).toBe(help)
  })

  it('says in one line what is wrong with PostgreSQL flags, or with a database it cannot reach', async () => {
    const unreachable = `postgres://petal@127.0.0.1:${await freePort()}/db`
    for (const [args, expected] of [
      [['--postgres', unreachable, '--data', fresh('both')], '--data and --postgres (or PETALDB_POSTGRES) exclude each other'],
      [['--postgres', unreachable, '--members', 'r1=ws://127.0.0.1:1'], '--members and --postgres exclude each other'],
      [['--lease-ms', '2000'], '--lease-ms goes with --postgres'],
      [['--postgres', 'mysql://x'], '--postgres expects a URL postgres://'],
      [['--postgres', unreachable, '--lease-ms', '10'], '--lease-ms must be at least 100']
    ] as const) {
      const result = await run(['relay', '--port', '0', ...args])
      expect(result.code, args.join(' ')).toBe(2)
      expect(failureLine(result.stderr)).toContain(expected)
    }
    const result = await run(['relay', '--port', '0', '--id', 'r1'], { ...process.env, PETALDB_POSTGRES: unreachable })
    expect(result.code).toBe(1)
    expect(failureLine(result.stderr)).toContain('cannot prepare the PostgreSQL database')
  })

  it('refuses a second relay on the same data directory, naming the first; the lock dies with its holder', async () => {
    const dir = fresh('shared')
    const first = await relay(dir)
    const second = await run(['relay', '--port', '0', '--data', dir])
    expect(second.code).toBe(1)
    const line = failureLine(second.stderr)
    expect(line).toContain(`data directory ${dir} is in use by another relay`)
    expect(line).toContain(`pid ${first.child.pid}`)
    // The first relay still serves, alone.
    const client = stockClient(first.url, 'locked/doc')
    await client.synced()
    client.destroy()
    await first.stop('SIGKILL')
    const third = await relay(dir) // kill -9 left no stale lock
    expect(third.url).toMatch(/^ws:/)
  })

  it('says in one line that a port is in use, or out of range', async () => {
    const taken = await relay(fresh('taken'))
    const port = new URL(taken.url).port
    const inUse = await run(['relay', '--port', port, '--data', fresh('second')])
    expect(inUse.code).toBe(1)
    expect(failureLine(inUse.stderr)).toBe(`petaldb: port ${port} on 127.0.0.1 is already in use by another process: stop it, or pick another --port`)

    const outOfRange = await run(['relay', '--port', '70000', '--data', fresh('range')])
    expect(outOfRange.code).toBe(2)
    expect(failureLine(outOfRange.stderr)).toBe('petaldb: --port must be at most 65535, got 70000')
  })

  it('names a data directory it cannot use', async () => {
    const file = fresh('file')
    writeFileSync(file, 'not a directory')
    const result = await run(['relay', '--port', '0', '--data', join(file, 'data')])
    expect(result.code).toBe(1)
    expect(failureLine(result.stderr)).toMatch(new RegExp(`^petaldb: cannot use data directory ${join(file, 'data')}: (ENOTDIR|EEXIST)$`))
  })

  it('refuses an empty or missing cluster secret file', async () => {
    const empty = fresh('secret')
    writeFileSync(empty, '\n')
    const args = ['relay', '--port', '0', '--data', fresh('data'), '--id', 'r1', '--members', 'r1=ws://127.0.0.1:1', '--cluster-secret-file']
    const result = await run([...args, empty])
    expect(result.code).toBe(2)
    expect(failureLine(result.stderr)).toBe(`petaldb: --cluster-secret-file ${empty} is empty: a cluster secret cannot be empty`)
    const missing = await run([...args, join(root, 'no-such-file')])
    expect(failureLine(missing.stderr)).toBe(`petaldb: cannot read --cluster-secret-file ${join(root, 'no-such-file')}: ENOENT`)
  })
})

describe('webhook flags', () => {
  it('refuses --webhook without a signing secret, or with a URL that is not http', async () => {
    const env = { ...process.env, PETALDB_WEBHOOK_SECRET: '' }
    const noSecret = await run(['relay', '--port', '0', '--data', fresh('hook'), '--webhook', 'http://127.0.0.1:9/hook'], env)
    expect(noSecret.code).toBe(2)
    expect(failureLine(noSecret.stderr)).toBe('petaldb: --webhook needs a signing secret: --webhook-secret-file F or PETALDB_WEBHOOK_SECRET')
    const badUrl = await run(['relay', '--port', '0', '--data', fresh('hook'), '--webhook', 'ftp://x'], { ...env, PETALDB_WEBHOOK_SECRET: 'a-secret' })
    expect(failureLine(badUrl.stderr)).toBe('petaldb: --webhook expects an http:// or https:// URL, got "ftp://x"')
  })
})

describe('the dev cluster', () => {
  /** A base port with the next two ports free too. */
  async function threeFreePorts (): Promise<number> {
    for (;;) {
      const base = await freePort()
      if (base + 2 > 65535) continue
      const free = await Promise.all([1, 2].map(i => portIsFree(base + i)))
      if (free.every(Boolean)) return base
    }
  }

  it('keeps the others running when a relay dies, says which, restarts it with --restart, and keeps the secret out of argv', { timeout: 60_000 }, async () => {
    const base = await threeFreePorts()
    const data = fresh('cluster')
    const cluster = spawn(process.execPath, [CLI_PATH, 'cluster', '--relays', '3', '--base-port', String(base), '--data', data, '--restart'], { stdio: ['ignore', 'pipe', 'pipe'] })
    const errors: string[] = []
    const listening = new Set<string>()
    const changed = new EventTarget()
    createInterface({ input: cluster.stderr! }).on('line', line => { if (!line.startsWith('{')) errors.push(line); changed.dispatchEvent(new Event('x')) })
    createInterface({ input: cluster.stdout! }).on('line', line => { const m = /listening on (\S+)/.exec(line); if (m !== null) listening.add(`${m[1]}#${listening.size}`); changed.dispatchEvent(new Event('x')) })
    const when = (what: string, check: () => boolean): Promise<void> => until(what, cb => { changed.addEventListener('x', cb); return () => changed.removeEventListener('x', cb) }, check, 20_000)
    try {
      await when('three relays to listen', () => listening.size === 3)
      const pidOf = (id: string): number => (JSON.parse(readFileSync(join(data, id, 'relay.pid'), 'utf8')) as { pid: number }).pid
      for (const id of ['r1', 'r2', 'r3']) {
        const argv = readFileSync(`/proc/${pidOf(id)}/cmdline`, 'utf8')
        expect(argv).not.toContain('secret')
      }
      process.kill(pidOf('r2'), 'SIGKILL')
      await when('the cluster to report relay r2', () => errors.some(line => line.includes('relay r2')))
      expect(errors.find(line => line.includes('relay r2'))).toBe(`petaldb: relay r2 (port ${base + 1}) exited by SIGKILL; restarting it`)
      // The others never stopped: a client on r1 syncs while r2 is down or restarting.
      const client = stockClient(`ws://127.0.0.1:${base}`, 'dev/failover')
      await client.synced()
      client.destroy()
      await when('r2 to listen again', () => listening.size === 4)
    } finally {
      cluster.kill('SIGTERM')
      await new Promise(resolve => cluster.once('exit', resolve))
    }
  })
})

function portIsFree (port: number): Promise<boolean> {
  return new Promise(resolve => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })
}
