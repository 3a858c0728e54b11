/**
 * Updates whose dependencies are missing: the relay stores each as it arrives (so an
 * acknowledgement means it is on disk), and integrates them once the dependency arrives.
 */
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import * as Y from 'yjs'
import { SqliteStore } from '../../shared/storage/sqlite-store.js'
import { parseDocId } from '../../shared/wire/doc-id.js'
import { encodeSyncUpdate } from '../../shared/wire/y-messages.js'
import { startRelay } from '../../server/relay.js'
import { once } from '../helpers/events.js'
import { captureLog } from '../helpers/log-capture.js'
import { stockClient } from '../helpers/stock-client.js'
import { tempDir } from '../helpers/temp.js'

const store = new SqliteStore(join(tempDir(), 'relay.db'))
const relay = await startRelay({ port: 0, store, logger: captureLog('warn').logger })
afterAll(() => relay.close())

describe('updates waiting for dependencies', () => {
  it('stores every pending update as it arrives, and integrates them when the dependency comes', async () => {
    const source = new Y.Doc()
    const updates: Uint8Array[] = []
    source.on('update', (u: Uint8Array) => updates.push(u))
    for (const char of 'abc') source.getText('t').insert(source.getText('t').length, char)
    const ws = new WebSocket(`${relay.url}/waiting`)
    await once(ws, 'open')
    const reader = stockClient(relay.url, 'waiting')
    await reader.synced()
    // b and c depend on a, which comes last: both wait, the second merged into the first's record.
    ws.send(encodeSyncUpdate(updates[1]!))
    ws.send(encodeSyncUpdate(updates[2]!))
    ws.send(encodeSyncUpdate(updates[0]!))
    await reader.textIs('abc')
    const stored = (await store.load(parseDocId('waiting')))!
    // b and c raw, as they arrived; then a, and the integrated result, through the update event.
    expect(stored.updates.length).toBeGreaterThanOrEqual(3)
    const check = new Y.Doc()
    for (const u of stored.updates.slice(0, 2)) Y.applyUpdate(check, u)
    expect(check.store.pendingStructs).not.toBeNull()
    ws.close()
    reader.destroy()
  })
})
