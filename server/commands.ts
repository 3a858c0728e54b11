/**
 * The `petaldb` commands: `petaldb relay [flags]` starts a relay, `petaldb cluster` a local
 * development cluster. Run from `cli.ts` once the packages a relay needs are known to be there.
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import type { Logger, pino as Pino } from 'pino'
import { requirePeer } from '../shared/node-peers.js'

const { pino } = requirePeer<{ pino: typeof Pino }>('pino', 'The relay')
import { Cluster, parseMembers, type ClusterOptions } from './cluster/cluster.js'
import { clusterCommand } from './cluster/dev-cluster.js'
import { startRelay } from './relay.js'
import { parseAuthKeys } from '../shared/listen/auth.js'
import { DEFAULT_LIMITS, type Limits } from '../shared/listen/limits.js'

const CLI_PATH = fileURLToPath(new URL('./cli.js', import.meta.url))

const USAGE = `Usage: petaldb <command> [flags]

Commands:
  relay     start a relay (run "petaldb relay --help" for its flags)
  cluster   start a local development cluster of relays (run "petaldb cluster --help")

Flags:
  -h, --help    show this help
`

/** Flag, limit, description: one flag per limit. */
const LIMIT_FLAGS: Array<[string, keyof Limits, string]> = [
  ['max-frame-bytes', 'maxFrameBytes', 'largest WebSocket frame, 1009'],
  ['max-docs-per-connection', 'maxDocsPerConnection', 'documents open on one native connection, 1008'],
  ['max-connections-per-ip', 'maxConnectionsPerIp', 'connections from one IP address, 1013'],
  ['max-messages-per-second', 'maxMessagesPerSecond', 'messages per second per connection (a faster one is slowed down; 1008 once 10 s ahead)'],
  ['max-bytes-per-second', 'maxBytesPerSecond', 'bytes per second per connection, received or sent as answers (as above)'],
  ['max-document-bytes', 'maxDocumentBytes', 'stored size of one document, 1009'],
  ['max-waiting-bytes', 'maxWaitingBytes', 'bytes of updates waiting for dependencies per document, 1008'],
  ['max-clients-per-document', 'maxClientsPerDocument', 'distinct Yjs client ids in one document, 1008'],
  ['max-awareness-entries', 'maxAwarenessEntries', 'awareness entries per document, 1008'],
  ['max-awareness-state-bytes', 'maxAwarenessStateBytes', 'bytes of one awareness state, 1008'],
  ['max-buffered-bytes', 'maxBufferedBytes', 'bytes queued to a slow reader before it is dropped']
]

const RELAY_USAGE = `Usage: petaldb relay [flags]

Starts a PetalDB relay. Stock y-websocket clients connect to ws://HOST:PORT/<docId>.

Flags:
  --host HOST             interface to listen on (default 127.0.0.1)
  --port PORT             port to listen on, 0 for any free port (default 4321)
  --data DIR              directory of the SQLite database (default ./petal-data)
  --idle-ms MS            keep a document with no connection in memory this long (default 30000)
  --compact-min-bytes N   never compact a document log smaller than this (default 16384)
  --log-level LEVEL       fatal, error, warn, info, debug or trace (default info); logs are JSON on stderr
  -h, --help              show this help

Security flags:
  --auth-secret [KID=]S   HS256 key for client tokens (JWT); repeat with KID= to rotate keys (a token's
                          "kid" header picks one). Without a secret the relay is open to anyone.
  --auth-secret-file F    read keys from a file, one [KID=]SECRET per line
  --allowed-origin O      browser origin allowed to connect (repeatable); default any
  --tls-cert F, --tls-key F   serve wss:// with this PEM certificate and key

Limits (exceeding one closes the connection with the code shown):
${LIMIT_FLAGS.map(([flag, key, text]) => `  --${flag} N`.padEnd(32) + `${text} (default ${DEFAULT_LIMITS[key]})`).join('\n')}

Cluster flags (all relays of a cluster get the same member list):
  --id ID                 this relay's id in the member list
  --peers LIST            every member, this relay included: r1=ws://127.0.0.1:4321,r2=ws://127.0.0.1:4322,...
  --replicas R            relays that keep a copy of each document, its homes (default 3, at most the cluster size)
  --write-quorum W        homes that must commit an update before it is acknowledged (default a majority of R)
  --cluster-secret S      shared secret of relay-to-relay links (default: none, links unauthenticated)
  --cluster-secret-file F read the cluster secret from a file
`

function fail (message: string): never {
  process.stderr.write(`petaldb: ${message}\n`)
  process.exit(2)
}

function integer (value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined
  const n = Number(value)
  if (!Number.isSafeInteger(n) || n < 0) fail(`${flag} expects a non-negative integer, got ${JSON.stringify(value)}`)
  return n
}

async function relayCommand (args: string[]): Promise<void> {
  let values
  try {
    values = parseArgs({
      args,
      options: {
        host: { type: 'string' },
        port: { type: 'string' },
        data: { type: 'string' },
        'idle-ms': { type: 'string' },
        'compact-min-bytes': { type: 'string' },
        ...Object.fromEntries(LIMIT_FLAGS.map(([flag]) => [flag, { type: 'string' as const }])),
        'auth-secret': { type: 'string', multiple: true },
        'auth-secret-file': { type: 'string' },
        'allowed-origin': { type: 'string', multiple: true },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        'log-level': { type: 'string' },
        id: { type: 'string' },
        peers: { type: 'string' },
        replicas: { type: 'string' },
        'write-quorum': { type: 'string' },
        'cluster-secret': { type: 'string' },
        'cluster-secret-file': { type: 'string' },
        help: { type: 'boolean', short: 'h' }
      },
      strict: true
    }).values
  } catch (error) {
    fail(`${(error as Error).message}\n\n${RELAY_USAGE}`)
  }
  if (values.help === true) {
    process.stdout.write(RELAY_USAGE)
    return
  }
  const level = values['log-level'] ?? 'info'
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace'].includes(level)) fail(`unknown log level ${JSON.stringify(level)}`)
  const logger = pino({ level }, pino.destination(2))
  const dataDir = values.data ?? './petal-data'
  const port = integer(values.port, '--port')
  const idleMs = integer(values['idle-ms'], '--idle-ms')
  const compactMinBytes = integer(values['compact-min-bytes'], '--compact-min-bytes')
  const limits: Partial<Limits> = {}
  for (const [flag, key] of LIMIT_FLAGS) {
    const value = integer((values as Record<string, unknown>)[flag] as string | undefined, `--${flag}`)
    if (value !== undefined) limits[key] = value
  }
  const cluster = clusterFlags(values, logger)
  const authKeys = authFlags(values)
  const tlsCert = values['tls-cert'] as string | undefined
  const tlsKey = values['tls-key'] as string | undefined
  if ((tlsCert === undefined) !== (tlsKey === undefined)) fail('--tls-cert and --tls-key go together')
  const relay = await startRelay({
    logger,
    dataDir,
    limits,
    ...(authKeys === undefined ? {} : { authKeys }),
    ...(values['allowed-origin'] === undefined ? {} : { allowedOrigins: values['allowed-origin'] as string[] }),
    ...(tlsCert === undefined || tlsKey === undefined ? {} : { tls: { cert: readFileSync(tlsCert), key: readFileSync(tlsKey) } }),
    ...(cluster === undefined ? {} : { cluster }),
    ...(values.host === undefined ? {} : { host: values.host as string }),
    ...(port === undefined ? {} : { port }),
    ...(idleMs === undefined ? {} : { idleMs }),
    ...(compactMinBytes === undefined ? {} : { compactMinBytes })
  })
  const role = cluster === undefined ? '' : ` as ${cluster.selfId} of a ${cluster.members.length}-relay cluster`
  process.stdout.write(`PetalDB relay listening on ${relay.url}${role} (data in ${dataDir})\n`)

  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) return
    stopping = true
    logger.info({ signal }, 'shutting down')
    relay.close().then(() => {
      logger.flush()
      process.exit(0)
    }, (error: unknown) => {
      logger.error({ err: error }, 'shutdown failed')
      process.exit(1)
    })
  }
  process.on('SIGINT', () => stop('SIGINT'))
  process.on('SIGTERM', () => stop('SIGTERM'))
}

function authFlags (values: Record<string, unknown>): Map<string, string> | undefined {
  const file = values['auth-secret-file'] as string | undefined
  const inline = (values['auth-secret'] as string[] | undefined) ?? []
  const lines = [...inline, ...(file === undefined ? [] : readFileSync(file, 'utf8').split('\n'))]
  if (lines.length === 0) return undefined
  try {
    return parseAuthKeys(lines)
  } catch (error) {
    fail((error as Error).message)
  }
}

function clusterFlags (values: Record<string, unknown>, logger: Logger): ClusterOptions | undefined {
  const id = values.id as string | undefined
  const peers = values.peers as string | undefined
  if (id === undefined && peers === undefined) return undefined
  if (id === undefined || peers === undefined) fail('--id and --peers go together')
  let members
  try {
    members = parseMembers(peers)
  } catch (error) {
    fail((error as Error).message)
  }
  const secretFile = values['cluster-secret-file'] as string | undefined
  const secret = secretFile === undefined ? values['cluster-secret'] as string | undefined : readFileSync(secretFile, 'utf8').trim()
  if (secret === undefined) logger.warn('no --cluster-secret: relay-to-relay links are not authenticated')
  const replicas = integer(values.replicas as string | undefined, '--replicas')
  const writeQuorum = integer(values['write-quorum'] as string | undefined, '--write-quorum')
  const options: ClusterOptions = {
    selfId: id,
    members,
    ...(replicas === undefined ? {} : { copies: replicas }),
    ...(writeQuorum === undefined ? {} : { writeQuorum }),
    ...(secret === undefined ? {} : { secret })
  }
  try {
    void new Cluster(options) // validates the settings before the relay starts
  } catch (error) {
    fail((error as Error).message)
  }
  return options
}

/** Runs the command line `argv` (without the node and script arguments). */
export async function main (argv: string[]): Promise<void> {
  const [command, ...rest] = argv
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE)
    return
  }
  if (command === 'relay') return relayCommand(rest)
  if (command === 'cluster') return clusterCommand(rest, CLI_PATH)
  fail(`unknown command ${JSON.stringify(command)}\n\n${USAGE}`)
}
