#!/usr/bin/env node
/**
 * The `petaldb` command line: `petaldb relay [flags]` starts a relay.
 */
import { parseArgs } from 'node:util'
import { pino } from 'pino'
import { startRelay } from './relay.js'

const USAGE = `Usage: petaldb <command> [flags]

Commands:
  relay     start a relay (run "petaldb relay --help" for its flags)

Flags:
  -h, --help    show this help
`

const RELAY_USAGE = `Usage: petaldb relay [flags]

Starts a PetalDB relay. Stock y-websocket clients connect to ws://HOST:PORT/<docId>.

Flags:
  --host HOST             interface to listen on (default 127.0.0.1)
  --port PORT             port to listen on, 0 for any free port (default 4321)
  --data DIR              directory of the SQLite database (default ./petal-data)
  --idle-ms MS            keep a document with no connection in memory this long (default 30000)
  --max-frame-bytes N     largest accepted WebSocket frame (default 16777216)
  --compact-min-bytes N   never compact a document log smaller than this (default 16384)
  --log-level LEVEL       fatal, error, warn, info, debug or trace (default info); logs are JSON on stderr
  -h, --help              show this help
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
        'max-frame-bytes': { type: 'string' },
        'compact-min-bytes': { type: 'string' },
        'log-level': { type: 'string' },
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
  const maxFrameBytes = integer(values['max-frame-bytes'], '--max-frame-bytes')
  const compactMinBytes = integer(values['compact-min-bytes'], '--compact-min-bytes')
  const relay = await startRelay({
    logger,
    dataDir,
    ...(values.host === undefined ? {} : { host: values.host }),
    ...(port === undefined ? {} : { port }),
    ...(idleMs === undefined ? {} : { idleMs }),
    ...(maxFrameBytes === undefined ? {} : { maxFrameBytes }),
    ...(compactMinBytes === undefined ? {} : { compactMinBytes })
  })
  process.stdout.write(`PetalDB relay listening on ${relay.url} (data in ${dataDir})\n`)

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

async function main (argv: string[]): Promise<void> {
  const [command, ...rest] = argv
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE)
    return
  }
  if (command === 'relay') return relayCommand(rest)
  fail(`unknown command ${JSON.stringify(command)}\n\n${USAGE}`)
}

main(process.argv.slice(2)).catch((error: unknown) => {
  process.stderr.write(`petaldb: ${(error as Error).stack ?? String(error)}\n`)
  process.exit(1)
})
