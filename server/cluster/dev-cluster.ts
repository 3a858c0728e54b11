/**
 * `petaldb cluster`: a local development cluster, one relay process per member, sharing a
 * freshly generated cluster secret. Prints the URLs; Ctrl-C (or SIGTERM) stops them all.
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
  --replicas R        relays that keep a copy of each document (default 3, at most N)
  --write-quorum W    write quorum (default a majority of R)
  -h, --help          show this help
`

/** Runs the `cluster` command; `cliPath` is the petaldb CLI that starts each relay. */
export async function clusterCommand (args: string[], cliPath: string): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      relays: { type: 'string', default: '3' },
      'base-port': { type: 'string', default: '4321' },
      data: { type: 'string', default: './petal-cluster' },
      replicas: { type: 'string' },
      'write-quorum': { type: 'string' },
      help: { type: 'boolean', short: 'h' }
    }
  })
  if (values.help === true) {
    process.stdout.write(USAGE)
    return
  }
  const count = Number(values.relays)
  const basePort = Number(values['base-port'])
  if (!Number.isInteger(count) || count < 1 || !Number.isInteger(basePort) || basePort < 1) {
    process.stderr.write(`petaldb: --relays and --base-port expect positive integers\n\n${USAGE}`)
    process.exit(2)
  }
  const members = Array.from({ length: count }, (_, i) => ({ id: `r${i + 1}`, port: basePort + i }))
  const peers = members.map(m => `${m.id}=ws://127.0.0.1:${m.port}`).join(',')
  const secret = randomBytes(16).toString('hex')
  const extra = [
    ...(values.replicas === undefined ? [] : ['--replicas', values.replicas]),
    ...(values['write-quorum'] === undefined ? [] : ['--write-quorum', values['write-quorum']])
  ]
  const children: ChildProcess[] = members.map(m => spawn(process.execPath, [
    cliPath, 'relay', '--id', m.id, '--port', String(m.port), '--data', join(values.data, m.id),
    '--peers', peers, '--cluster-secret', secret, ...extra
  ], { stdio: ['ignore', 'inherit', 'inherit'] }))

  let stopping = false
  const stop = (): void => {
    if (stopping) return
    stopping = true
    for (const child of children) child.kill('SIGTERM')
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
  const codes = await Promise.all(children.map(child => new Promise<number>(resolve => child.once('exit', code => {
    if (!stopping) {
      process.stderr.write(`petaldb: a relay exited (${code}); stopping the cluster\n`)
      stop()
    }
    resolve(code ?? 1)
  }))))
  process.exit(codes.every(code => code === 0) ? 0 : 1)
}
