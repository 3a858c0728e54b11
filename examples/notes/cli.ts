/**
 * `npm run demo [-- --port N --relay-port N --host H --data DIR]`: starts the notes demo
 * and prints its URL. Environment: PETALDB_DEMO_PORT, PETALDB_DEMO_RELAY_PORT.
 */
import { parseArgs } from 'node:util'
import { pino } from 'pino'
import { startDemo } from './server.js'

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.PETALDB_DEMO_PORT ?? '4380' },
    'relay-port': { type: 'string', default: process.env.PETALDB_DEMO_RELAY_PORT ?? '4381' },
    host: { type: 'string', default: '127.0.0.1' },
    data: { type: 'string', default: './petal-demo' }
  }
})

try {
  const demo = await startDemo({
    host: values.host,
    port: Number(values.port),
    relayPort: Number(values['relay-port']),
    dataDir: values.data,
    logger: pino({ level: 'warn' }, pino.destination(2))
  })
  process.stdout.write([
    `Petal notes: ${demo.url}`,
    `relay ${demo.relay.url}, data in ${values.data}`,
    'Open it in two browser windows (one private, so it is another device) to see them sync. Ctrl-C stops.',
    ''
  ].join('\n'))
  const stop = (): void => { void demo.close().then(() => process.exit(0)) }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
} catch (error) {
  process.stderr.write(`petaldb demo: ${(error as Error).message}\n`)
  process.exit(1)
}
