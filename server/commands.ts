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
import { startRelay, type RelayOptions } from './relay.js'
import type { DeploymentOptions } from './relay-options.js'
import { DEFAULT_DATA_DIR } from './deployments/open.js'
import { parseAuthKeys } from '../shared/listen/auth.js'
import { DEFAULT_LIMITS, type Limits } from '../shared/listen/limits.js'
import { DEFAULT_LEASE_MS, type PostgresOptions } from './postgres/postgres-node.js'
import { withoutPassword } from './postgres/url.js'
import { parsePlacementSpec } from './placement/options.js'
import { TOOL_COMMANDS } from './tools/tool-commands.js'

const CLI_PATH = fileURLToPath(new URL('./cli.js', import.meta.url))

const USAGE = `Usage: petaldb <command> [flags]

Commands:
  relay     start a relay (run "petaldb relay --help" for its flags)
  cluster   start a local development cluster of relays (run "petaldb cluster --help")
  backup    copy a relay's database while it runs ("petaldb backup --help")
  restore   put a backup in place as a data directory's database ("petaldb restore --help")
  export    write every document as a Yjs update file, with a manifest ("petaldb export --help")
  import    apply exported files to a data directory or a running relay ("petaldb import --help")

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
  ['max-buffered-bytes', 'maxBufferedBytes', 'bytes queued to a slow reader before it is dropped'],
  ['min-body-bytes-per-second', 'minBodyBytesPerSecond', 'slowest HTTP request body, over each 10 s; a slower one is cut off'],
  ['max-body-bytes-per-ip', 'maxBodyBytesPerIp', 'bytes of HTTP request bodies held at once from one address, HTTP 429'],
  ['max-body-bytes-total', 'maxBodyBytesTotal', 'bytes of HTTP request bodies held at once in all, HTTP 503']
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

Webhooks (a POST of {"docId","updatedAt"} after changes, signed in X-PetalDB-Signature):
  --webhook URL           call URL after changes and deletions (repeatable)
  --webhook-debounce-ms N wait this long after a change, gathering more, before calling (default 1000)
  --webhook-secret-file F the HMAC-SHA256 signing key, from a file (or set PETALDB_WEBHOOK_SECRET)

Relays on one PostgreSQL database (any number; they find each other through it, no member list):
  --postgres URL          store documents in PostgreSQL instead of --data: postgres://user:pass@host:5432/db
                          (or set PETALDB_POSTGRES); the relay creates and migrates its tables itself
  --id ID                 this relay's id among them (default its advertised URL)
  --advertise-url URL     ws:// URL that clients and the other relays reach this relay at (default its listening URL)
  --lease-ms MS           a relay that stops renewing its lease is gone for the others this long after
                          its last renewal, and its documents move (default ${DEFAULT_LEASE_MS})
  --placement SPEC        load placement: \`off\`, or settings such as ratio=1.5,min-rate=200 (a relay above
                          ratio × the mean updates/s hands documents to the least loaded; see the README)

Cluster flags on SQLite (all relays of a cluster get the same member list):
  --id ID                 this relay's id in the member list
  --members LIST          every member, this relay included: r1=ws://127.0.0.1:4321,r2=ws://127.0.0.1:4322,...
  --copies R              relays that keep a copy of each document, its homes (default 3, at most the cluster size)
  --write-quorum W        homes that must commit an update before it is acknowledged (default a majority of R)
  --cluster-secret-file F read the shared secret of relay-to-relay links from a file (or set
                          PETALDB_CLUSTER_SECRET); default none: links unauthenticated
  --cluster-secret S      the same on the command line, where \`ps\` shows it to every user
`

/** Prints one line (usage errors exit 2, failures to start 1) and exits. */
function fail (message: string, code = 2): never {
  process.stderr.write(`petaldb: ${message}\n`)
  process.exit(code)
}

/** The text of the file a flag names, or a one-line failure naming it. */
function readFlagFile (flag: string, path: string): string {
  try {
    return readFileSync(path, 'utf8')
  } catch (error) {
    fail(`cannot read ${flag} ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`)
  }
}

/** One line saying why the relay did not start, naming the port or path. */
function startFailure (error: NodeJS.ErrnoException, host: string, port: number): string {
  if (error.code === 'EADDRINUSE') return `port ${port} on ${host} is already in use by another process: stop it, or pick another --port`
  if (error.code === 'EACCES' && error.syscall === 'listen') return `no permission to listen on port ${port} on ${host} (ports below 1024 need privileges): pick another --port`
  if (error.code === 'EADDRNOTAVAIL') return `cannot listen on ${host}: no such local address (--host)`
  return error.message
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
        members: { type: 'string' },
        copies: { type: 'string' },
        'write-quorum': { type: 'string' },
        'cluster-secret': { type: 'string' },
        'cluster-secret-file': { type: 'string' },
        postgres: { type: 'string' },
        'advertise-url': { type: 'string' },
        'lease-ms': { type: 'string' },
        placement: { type: 'string' },
        webhook: { type: 'string', multiple: true },
        'webhook-debounce-ms': { type: 'string' },
        'webhook-secret-file': { type: 'string' },
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
  const dataDir = values.data ?? DEFAULT_DATA_DIR
  const port = integer(values.port, '--port')
  if (port !== undefined && port > 65535) fail(`--port must be at most 65535, got ${port}`)
  const idleMs = integer(values['idle-ms'], '--idle-ms')
  const compactMinBytes = integer(values['compact-min-bytes'], '--compact-min-bytes')
  const limits: Partial<Limits> = {}
  for (const [flag, key] of LIMIT_FLAGS) {
    const value = integer((values as Record<string, unknown>)[flag] as string | undefined, `--${flag}`)
    if (value !== undefined) limits[key] = value
  }
  const postgres = postgresFlags(values)
  const cluster = postgres === undefined ? clusterFlags(values, logger) : undefined
  const webhooks = webhookFlags(values)
  const authKeys = authFlags(values)
  const tlsCert = values['tls-cert'] as string | undefined
  const tlsKey = values['tls-key'] as string | undefined
  if ((tlsCert === undefined) !== (tlsKey === undefined)) fail('--tls-cert and --tls-key go together')
  const host = values.host ?? '127.0.0.1'
  const deployment: DeploymentOptions = postgres !== undefined
    ? { postgres, ...(values.id === undefined ? {} : { relayId: values.id }) }
    : cluster !== undefined ? { cluster, dataDir } : { dataDir }
  const relay = await startRelay({
    logger,
    ...deployment,
    limits,
    ...(authKeys === undefined ? {} : { authKeys }),
    ...(values['allowed-origin'] === undefined ? {} : { allowedOrigins: values['allowed-origin'] as string[] }),
    ...(tlsCert === undefined || tlsKey === undefined ? {} : { tls: { cert: readFlagFile('--tls-cert', tlsCert), key: readFlagFile('--tls-key', tlsKey) } }),
    ...(webhooks === undefined ? {} : { webhooks }),
    host,
    ...(port === undefined ? {} : { port }),
    ...(idleMs === undefined ? {} : { idleMs }),
    ...(compactMinBytes === undefined ? {} : { compactMinBytes })
  }).catch((error: unknown) => {
    logger.debug({ err: error }, 'relay failed to start')
    fail(startFailure(error as NodeJS.ErrnoException, host, port ?? 4321), 1)
  })
  process.stdout.write(`PetalDB relay listening on ${relay.url} ${relay.role}\n`)

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
  const lines = [...inline, ...(file === undefined ? [] : readFlagFile('--auth-secret-file', file).split('\n'))]
  if (lines.length === 0) return undefined
  try {
    return parseAuthKeys(lines)
  } catch (error) {
    fail((error as Error).message)
  }
}

/** The PostgreSQL settings: --postgres (else PETALDB_POSTGRES), --advertise-url, --lease-ms; undefined for a relay on SQLite. */
function postgresFlags (values: Record<string, unknown>): PostgresOptions | undefined {
  const url = (values.postgres as string | undefined) ?? process.env.PETALDB_POSTGRES
  if (url === undefined || url === '') {
    for (const flag of ['advertise-url', 'lease-ms', 'placement']) if (values[flag] !== undefined) fail(`--${flag} goes with --postgres`)
    return undefined
  }
  if (!/^postgres(ql)?:\/\//.test(url)) fail(`--postgres expects a URL postgres://user:password@host:port/database, got ${JSON.stringify(withoutPassword(url))}`)
  if (values.data !== undefined) fail('--data and --postgres (or PETALDB_POSTGRES) exclude each other: documents are stored in one place')
  if (values.members !== undefined) fail('--members and --postgres exclude each other: relays on PostgreSQL find each other through the database')
  const advertiseUrl = values['advertise-url'] as string | undefined
  if (advertiseUrl !== undefined && !/^wss?:\/\/[^/]+$/.test(advertiseUrl)) fail(`--advertise-url expects ws://HOST:PORT or wss://HOST:PORT, got ${JSON.stringify(advertiseUrl)}`)
  const leaseMs = integer(values['lease-ms'] as string | undefined, '--lease-ms')
  if (leaseMs !== undefined && leaseMs < 100) fail(`--lease-ms must be at least 100, got ${leaseMs}`)
  let placement
  try {
    placement = values.placement === undefined ? undefined : parsePlacementSpec(values.placement as string)
  } catch (error) {
    fail((error as Error).message)
  }
  return { url, ...(advertiseUrl === undefined ? {} : { advertiseUrl }), ...(leaseMs === undefined ? {} : { leaseMs }), ...(placement === undefined ? {} : { placement }) }
}

function clusterFlags (values: Record<string, unknown>, logger: Logger): ClusterOptions | undefined {
  const id = values.id as string | undefined
  const list = values.members as string | undefined
  if (id === undefined && list === undefined) return undefined
  if (id === undefined || list === undefined) fail('--id and --members go together')
  let members
  try {
    members = parseMembers(list)
  } catch (error) {
    fail((error as Error).message)
  }
  const secret = clusterSecret(values)
  if (secret === undefined) logger.warn('no cluster secret: relay-to-relay links are not authenticated')
  const copies = integer(values.copies as string | undefined, '--copies')
  const writeQuorum = integer(values['write-quorum'] as string | undefined, '--write-quorum')
  const options: ClusterOptions = {
    selfId: id,
    members,
    ...(copies === undefined ? {} : { copies }),
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

/** `--webhook` and its flags; the signing secret from --webhook-secret-file or PETALDB_WEBHOOK_SECRET. */
function webhookFlags (values: Record<string, unknown>): RelayOptions['webhooks'] {
  const urls = (values.webhook as string[] | undefined) ?? []
  const file = values['webhook-secret-file'] as string | undefined
  if (urls.length === 0) {
    if (file !== undefined || values['webhook-debounce-ms'] !== undefined) fail('--webhook-secret-file and --webhook-debounce-ms need --webhook URL')
    return undefined
  }
  for (const url of urls) {
    if (!/^https?:\/\/[^/]/.test(url)) fail(`--webhook expects an http:// or https:// URL, got ${JSON.stringify(url)}`)
  }
  const secret = file === undefined ? process.env.PETALDB_WEBHOOK_SECRET : readFlagFile('--webhook-secret-file', file).trim()
  if (secret === undefined || secret === '') fail('--webhook needs a signing secret: --webhook-secret-file F or PETALDB_WEBHOOK_SECRET')
  const debounceMs = integer(values['webhook-debounce-ms'] as string | undefined, '--webhook-debounce-ms')
  return { urls, secret, ...(debounceMs === undefined ? {} : { debounceMs }) }
}

/** The cluster secret: from --cluster-secret-file, else PETALDB_CLUSTER_SECRET, else --cluster-secret (visible in `ps`). */
function clusterSecret (values: Record<string, unknown>): string | undefined {
  const file = values['cluster-secret-file'] as string | undefined
  if (file !== undefined) {
    const secret = readFlagFile('--cluster-secret-file', file).trim()
    if (secret === '') fail(`--cluster-secret-file ${file} is empty: a cluster secret cannot be empty`)
    return secret
  }
  const secret = process.env.PETALDB_CLUSTER_SECRET ?? values['cluster-secret'] as string | undefined
  if (secret === '') fail('the cluster secret is empty (PETALDB_CLUSTER_SECRET or --cluster-secret)')
  return secret
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
  const tool = Object.hasOwn(TOOL_COMMANDS, command) ? TOOL_COMMANDS[command] : undefined
  if (tool !== undefined) return tool(rest, fail)
  fail(`unknown command ${JSON.stringify(command)}\n\n${USAGE}`)
}
