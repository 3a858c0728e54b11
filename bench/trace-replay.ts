/**
 * The automerge-paper trace replayed by one stock y-websocket client through a relay (in a
 * child process, durable storage on), one update per edit, next to the same replay into a
 * bare Y.Doc. Reports total times and the stored size after compaction.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as Y from 'yjs'
import { parseDocId } from '../shared/wire/doc-id.js'
import { SqliteStore } from '../shared/storage/sqlite-store.js'
import { relayDatabasePath } from '../server/data-dir.js'
import { startRelayProcess } from '../test/helpers/relay-process.js'
import { UNLIMITED } from './servers.js'
import { stockClient } from '../test/helpers/stock-client.js'
import { loadTrace, patchesOf, type Patch } from './traces.js'

function applyPatches (text: Y.Text, patches: Patch[]): void {
  for (const [pos, deleted, inserted] of patches) {
    // One transaction, hence one update, per edit.
    text.doc!.transact(() => {
      if (deleted > 0) text.delete(pos, deleted)
      if (inserted !== '') text.insert(pos, inserted)
    })
  }
}

export async function traceReplay (traceName = 'automerge-paper'): Promise<Record<string, number | string>> {
  const trace = loadTrace(traceName)
  const patches = patchesOf(trace)

  const bare = new Y.Doc()
  let start = performance.now()
  applyPatches(bare.getText('t'), patches)
  const bareMs = performance.now() - start
  if (bare.getText('t').toString() !== trace.endContent) throw new Error('bare replay diverged from endContent')
  const bareEncoded = Y.encodeStateAsUpdate(bare).length
  const bareEncodedV2 = Y.encodeStateAsUpdateV2(bare).length

  const dataDir = mkdtempSync(join(tmpdir(), 'petaldb-bench-'))
  try {
    const relay = await startRelayProcess(dataDir, UNLIMITED)
    const client = stockClient(relay.url, 'paper')
    await client.synced()
    let updates = 0
    client.doc.on('update', () => { updates++ })
    start = performance.now()
    applyPatches(client.text, patches)
    const clientMs = performance.now() - start
    await relay.waitForCommitted(updates, 600_000)
    const relayMs = performance.now() - start
    client.destroy()
    if (await relay.stop('SIGTERM') !== 0) throw new Error('relay did not stop cleanly')

    const store = new SqliteStore(relayDatabasePath(dataDir))
    const stored = (await store.load(parseDocId('paper')))!
    const check = new Y.Doc()
    for (const part of [stored.snapshot, ...stored.updates]) if (part !== null) Y.applyUpdate(check, part)
    if (check.getText('t').toString() !== trace.endContent) throw new Error('stored document differs from endContent')
    await store.close()
    const fileBytes = statSync(relayDatabasePath(dataDir)).size

    return {
      trace: traceName,
      edits: patches.length,
      'bare Y.Doc replay (ms)': Math.round(bareMs),
      'bare Y.Doc encoded, v1 (bytes)': bareEncoded,
      'bare Y.Doc encoded, v2 (bytes)': bareEncodedV2,
      'client replay (ms)': Math.round(clientMs),
      'through relay, all committed (ms)': Math.round(relayMs),
      'relay / bare time': +(relayMs / bareMs).toFixed(2),
      'stored snapshot (bytes)': stored.snapshot?.length ?? 0,
      'stored log after compaction (updates)': stored.updates.length,
      'stored log after compaction (bytes)': stored.updates.reduce((sum, u) => sum + u.length, 0),
      'database file (bytes)': fileBytes
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true })
  }
}
