#!/usr/bin/env node
/**
 * The `petaldb` command line. The packages a relay needs beyond the client's (SQLite, or
 * the PostgreSQL driver for a relay that stores there, `ws`, the logger, the token library)
 * are optional peer dependencies of PetalDB, so that a browser app installs none of them:
 * this entry checks for them before loading the commands, and says how to install what is
 * missing.
 */
import { missing } from '../shared/node-peers.js'

const args = process.argv.slice(2)
const onPostgres = args.some(arg => arg === '--postgres' || arg.startsWith('--postgres=')) || (process.env.PETALDB_POSTGRES ?? '') !== ''
const RELAY_PACKAGES = onPostgres ? ['ws', 'pino', 'jose', 'prom-client', 'pg'] : ['better-sqlite3', 'ws', 'pino', 'jose', 'prom-client']

const lacking = missing(RELAY_PACKAGES)
if (lacking.length > 0) {
  process.stderr.write(`petaldb: the relay needs packages that are not installed: ${lacking.join(', ')}\n` +
    `Install them next to petaldb: npm install ${lacking.join(' ')}\n`)
  process.exit(2)
}
const { main } = await import('./commands.js')
main(args).catch((error: unknown) => {
  process.stderr.write(`petaldb: ${(error as Error).stack ?? String(error)}\n`)
  process.exit(1)
})
