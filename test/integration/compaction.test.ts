/**
 * Compaction: a long log becomes a snapshot and a short log, a reload gives the same
 * state, and a process killed in the middle of a compaction loses nothing it committed.
 */
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { parseDocId } from '../../shared/wire/doc-id.js'
import { PersistedDoc } from '../../shared/storage/persisted-doc.js'
import { SqliteStore } from '../../shared/storage/sqlite-store.js'
import { startRelay } from '../../server/relay.js'
import { captureLog } from '../helpers/log-capture.js'
import { stockClient } from '../helpers/stock-client.js'
import { tempDir } from '../helpers/temp.js'

const root = tempDir()
const fixture = fileURLToPath(new URL('./fixtures/crash-mid-compaction.ts', import.meta.url))

async function crashMidCompaction (dbPath: string, compactionsBefore: number): Promise<string> {
  const child = spawn(process.execPath, ['--import', 'tsx', fixture, dbPath, String(compactionsBefore)], { stdio: ['ignore', 'pipe', 'inherit'] })
  let lastCommitted = ''
  createInterface({ input: child.stdout }).on('line', line => { lastCommitted = line })
  const signal = await new Promise(resolve => child.once('exit', (_code, sig) => resolve(sig)))
  expect(signal).toBe('SIGKILL')
  return lastCommitted
}

describe('compaction', () => {
  it('turns many relayed updates into a snapshot and a short log, and reloads the same state', async () => {
    const dbPath = join(root, 'relay-compaction', 'relay.db')
    const store = new SqliteStore(dbPath)
    const relay = await startRelay({ port: 0, store, compactMinBytes: 1024, logger: captureLog('warn').logger })
    const writer = stockClient(relay.url, 'compact-me')
    await writer.synced()
    for (let i = 0; i < 2000; i++) writer.text.insert(writer.text.length, String(i % 10))
    const reader = stockClient(relay.url, 'compact-me')
    await reader.textIs(writer.text.toString())
    writer.destroy()
    reader.destroy()
    await relay.close()

    const reopened = new SqliteStore(dbPath)
    const stored = (await reopened.load(parseDocId('compact-me')))!
    expect(stored.snapshot).not.toBeNull()
    expect(stored.updates.length).toBeLessThan(200)
    const logBytes = stored.updates.reduce((sum, u) => sum + u.length, 0)
    expect(logBytes).toBeLessThanOrEqual(Math.max(1024, stored.snapshot!.length))
    const doc = new Y.Doc()
    await PersistedDoc.load(reopened, parseDocId('compact-me'), doc)
    expect(doc.getText('t').toString()).toBe(writer.text.toString())
    await reopened.close()
  })

  it.each([0, 3])('loses nothing committed when killed between compaction steps (after %i compactions)', async (compactionsBefore) => {
    const dbPath = join(root, `crash-${compactionsBefore}`, 'relay.db')
    const committed = await crashMidCompaction(dbPath, compactionsBefore)
    expect(committed.length).toBeGreaterThan(0)
    const store = new SqliteStore(dbPath)
    const doc = new Y.Doc()
    await PersistedDoc.load(store, parseDocId('doc'), doc)
    // Everything committed is there; the write in flight at the crash may or may not be.
    expect(doc.getText('t').toString().startsWith(committed)).toBe(true)
    await store.close()
  })
})
