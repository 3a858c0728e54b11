/**
 * A throwaway PostgreSQL server for tests and benchmarks: `initdb` in a temporary
 * directory, `pg_ctl` on a free port on 127.0.0.1 (as the unprivileged `postgres` user when
 * run as root, since PostgreSQL refuses to run as root), stopped and removed at the end.
 * A real server, no mock. Tests skip only when PostgreSQL is not installed and CI is not set.
 */
import { execFile } from 'node:child_process'
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import pg from 'pg'
import { freePort } from './relay-process.js'

const run = promisify(execFile)

/** The directory holding initdb, pg_ctl and postgres (PETALDB_PG_BIN, else Debian's newest, else PATH), or null. */
function findBinDir (): string | null {
  if (process.env.PETALDB_PG_BIN !== undefined) return process.env.PETALDB_PG_BIN
  const debian = '/usr/lib/postgresql'
  if (existsSync(debian)) {
    const versions = readdirSync(debian).filter(v => existsSync(join(debian, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a))
    if (versions[0] !== undefined) return join(debian, versions[0], 'bin')
  }
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir !== '' && existsSync(join(dir, 'initdb'))) return dir
  }
  return null
}

export const POSTGRES_BIN = findBinDir()

/** Whether to run the tests that need PostgreSQL: when it is installed, and always in CI (where missing is a failure). */
export const runPostgresTests = POSTGRES_BIN !== null || process.env.CI !== undefined

/** Why those tests were skipped. */
export const POSTGRES_MISSING = 'PostgreSQL is not installed, so the tests that need a real server are skipped: install it (Debian/Ubuntu: apt-get install postgresql; or set PETALDB_PG_BIN to the directory of initdb and pg_ctl)'

/** PostgreSQL refuses to run as root: as root, its commands run as this user. */
const SERVER_USER = 'postgres'
const asRoot = process.getuid?.() === 0

export interface TestPostgres {
  readonly port: number
  /** A URL of database `name` on the server (`postgres://petal@127.0.0.1:PORT/name`). */
  url(name?: string): string
  /** Creates an empty database and returns its URL. */
  createDatabase(): Promise<string>
  /** Stops the server: `immediate` is a crash (no checkpoint, clients cut off), as `pg_ctl -m immediate`. */
  stop(mode?: 'fast' | 'immediate'): Promise<void>
  /** Starts the server again (after {@link stop}), recovering from its WAL if it crashed. */
  start(): Promise<void>
  /** Stops the server and removes its directory. */
  destroy(): Promise<void>
}

/** Options of {@link startPostgres}. */
export interface TestPostgresOptions {
  /** Flush commits to disk (benchmarks); tests run with fsync off, which a process crash does not lose. Default false. */
  fsync?: boolean
}

/** Initializes and starts a PostgreSQL server in a fresh temporary directory. */
export async function startPostgres (options: TestPostgresOptions = {}): Promise<TestPostgres> {
  if (POSTGRES_BIN === null) throw new Error(POSTGRES_MISSING)
  const dir = mkdtempSync(join(tmpdir(), 'petaldb-pg-'))
  const data = join(dir, 'data')
  if (asRoot) {
    const { stdout } = await run('id', ['-u', SERVER_USER])
    const { stdout: group } = await run('id', ['-g', SERVER_USER])
    chownSync(dir, Number(stdout.trim()), Number(group.trim()))
  }
  const pgCommand = (name: string, args: string[]): Promise<unknown> => asRoot
    ? run('runuser', ['-u', SERVER_USER, '--', join(POSTGRES_BIN, name), ...args])
    : run(join(POSTGRES_BIN, name), args)
  await pgCommand('initdb', ['-D', data, '-U', 'petal', '--auth=trust', '-E', 'UTF8', '--no-locale', '--no-sync'])
  const port = await freePort()
  const settings = [
    '-c listen_addresses=127.0.0.1', `-c port=${port}`, `-c unix_socket_directories=${dir}`,
    `-c fsync=${options.fsync === true ? 'on' : 'off'}`, '-c max_connections=200'
  ].join(' ')
  const start = async (): Promise<void> => {
    await pgCommand('pg_ctl', ['-D', data, '-l', join(dir, 'server.log'), '-o', settings, '-w', '-t', '60', 'start'])
  }
  const stop = async (mode: 'fast' | 'immediate' = 'fast'): Promise<void> => {
    await pgCommand('pg_ctl', ['-D', data, '-m', mode, '-w', '-t', '60', 'stop'])
  }
  await start()
  let running = true
  let databases = 0
  const url = (name = 'postgres'): string => `postgres://petal@127.0.0.1:${port}/${name}`
  return {
    port,
    url,
    async createDatabase () {
      const name = `petal_${process.pid}_${databases++}`
      const admin = new pg.Client({ connectionString: url() })
      await admin.connect()
      try {
        await admin.query(`CREATE DATABASE ${name}`)
      } finally {
        await admin.end()
      }
      return url(name)
    },
    async stop (mode) {
      await stop(mode)
      running = false
    },
    async start () {
      await start()
      running = true
    },
    async destroy () {
      if (running) await stop('immediate').catch(() => {})
      running = false
      rmSync(dir, { recursive: true, force: true })
    }
  }
}
