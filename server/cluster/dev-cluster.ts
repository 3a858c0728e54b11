/**
 * `petaldb cluster`: a local development cluster, one relay process per member, sharing a
 * freshly generated cluster secret (passed in the environment, not on the command line). A
 * relay that dies leaves the others running, so failover can be tried by killing one;
 * `--restart` brings it back. Ctrl-C (or SIGTERM) stops them all.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { parseArgs } from 'node:util'

const USAGE = `Usage: petaldb cluster [flags]

Starts a local cluster of relay processes on 127.0.0.1, each with its own data directory.

Flags:
  --relays N          number of relays (default 3)
  --base-port PORT    port of the first relay; the others follow (default 4321)
  --data DIR          parent of the relays' data directories (default ./petal-cluster)
  --copies R          relays that keep a copy of each document (default 3, at most N)
  --write-quorum W    write quorum (default a majority of R)
  --restart           restart a relay that exits (by default the others keep running without it)
  -h, --help          show this help
`

/** Runs the `cluster` command; `cliPath` is the petaldb CLI that starts each relay. */
export async function clusterCommand (args: string[], cliPath: string): Promise<void> {
  let values
  try {
    values = parseArgs({
      args,
      options: {
        relays: { type: 'string', default: '3' },
        'base-port': { type: 'string', default: '4321' },
        data: { type: 'string', default: './petal-cluster' },
        copies: { type: 'string' },
        'write-quorum': { type: 'string' },
        restart: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' }
      }
    }).values
  } catch (error) {
    process.stderr.write(`petaldb: ${(error as Error).message}\n\n${USAGE}`)
    process.exit(2)
  }
  if (values.help === true) {
    process.stdout.write(USAGE)
    return
  }
  const count = Number(values.relays)
  const basePort = Number(values['base-port'])
  if (!Number.isInteger(count) || count < 1 || !Number.isInteger(basePort) || basePort < 1 || basePort + count - 1 > 65535) {
    process.stderr.write(`petaldb: --relays and --base-port expect positive integers\n\n${USAGE}`)
    process.exit(2)
  }
  const members = Array.from({ length: count }, (_, i) => ({ id: `r${i + 1}`, port: basePort + i }))
  const list = members.map(m => `${m.id}=ws://127.0.0.1:${m.port}`).join(',')
  const secret = randomBytes(16).toString('hex')
  const extra = [
    ...(values.copies === undefined ? [] : ['--copies', values.copies]),
    ...(values['write-quorum'] === undefined ? [] : ['--write-quorum', values['write-quorum']])
  ]
  const env = { ...process.env, PETALDB_CLUSTER_SECRET: secret } // not in argv, where `ps` would show it
  const restart = values.restart === true
  let stopping = false
  const running = new Map<string, ChildProcess>()
  const exited = members.map(m => new Promise<void>(resolve => {
    const startRelay = (): void => {
      const child = spawn(process.execPath, [
        cliPath, 'relay', '--id', m.id, '--port', String(m.port), '--data', join(values.data, m.id), '--members', list, ...extra
      ], { stdio: ['ignore', 'inherit', 'inherit'], env })
      running.set(m.id, child)
      child.once('exit', (code, signal) => {
        running.delete(m.id)
        if (stopping) return resolve()
        const how = signal === null ? `with code ${code}` : `by ${signal}`
        if (restart) {
          process.stderr.write(`petaldb: relay ${m.id} (port ${m.port}) exited ${how}; restarting it\n`)
          return startRelay()
        }
        process.stderr.write(`petaldb: relay ${m.id} (port ${m.port}) exited ${how}; the others keep running (start with --restart to restart relays that exit)\n`)
        resolve()
      })
    }
    startRelay()
  }))

  const stop = (): void => {
    stopping = true
    for (const child of running.values()) child.kill('SIGTERM')
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
  await Promise.all(exited)
  process.exit(stopping ? 0 : 1)
}
