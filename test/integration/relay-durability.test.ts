/**
 * Durability of the relay as a real child process: graceful restarts and kill -9.
 */
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { startRelayProcess, type RelayProcess } from '../helpers/relay-process.js'
import { stockClient, type StockClient } from '../helpers/stock-client.js'
import { tempDir } from '../helpers/temp.js'

const root = tempDir()
let n = 0
const running: RelayProcess[] = []
const clients: StockClient[] = []

async function relayAt (dataDir: string, args: string[] = []): Promise<RelayProcess> {
  const relay = await startRelayProcess(dataDir, args)
  running.push(relay)
  return relay
}
function client (relay: RelayProcess, docId: string): StockClient {
  const c = stockClient(relay.url, docId)
  clients.push(c)
  return c
}

afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy()
  await Promise.all(running.splice(0).map(r => r.stop('SIGKILL')))
})

describe('relay durability', () => {
  it('commits pending writes on SIGTERM, exits 0, and serves the same state after a restart', async () => {
    const data = join(root, `graceful-${n++}`)
    const relay = await relayAt(data)
    const writer = client(relay, 'notes/graceful')
    const watcher = client(relay, 'notes/graceful')
    await Promise.all([writer.synced(), watcher.synced()])
    for (let i = 0; i < 100; i++) writer.text.insert(writer.text.length, `${i} `)
    const expected = writer.text.toString()
    // Once the watcher has everything the relay has applied it; it may not have committed yet.
    await watcher.textIs(expected)
    expect(await relay.stop('SIGTERM')).toBe(0)
    for (const c of clients.splice(0)) c.destroy()

    const restarted = await relayAt(data)
    const reader = client(restarted, 'notes/graceful')
    await reader.synced()
    expect(reader.text.toString()).toBe(expected)
  })

  it('keeps every committed update through kill -9', async () => {
    const data = join(root, `kill-${n++}`)
    const relay = await relayAt(data, ['--compact-min-bytes', '512'])
    const writer = client(relay, 'notes/crash')
    await writer.synced()
    const edits = 300
    for (let i = 0; i < edits; i++) writer.text.insert(writer.text.length, `<${i}>`)
    const expected = writer.text.toString()
    await relay.waitForCommitted(edits)
    expect(await relay.stop('SIGKILL')).toBe('SIGKILL')
    writer.destroy()

    const restarted = await relayAt(data)
    const reader = client(restarted, 'notes/crash')
    await reader.synced()
    expect(reader.text.toString()).toBe(expected)
  })
})
