/**
 * A DELETE whose erasure did not finish: the relay committed the tombstone, but was killed
 * (kill -9) before the write-ahead log was folded back and emptied. Here a reader holding an
 * old snapshot (as a backup does) keeps the checkpoint from finishing, so the kill always
 * lands in that window. A restart, and a retried DELETE, complete the erasure: the data
 * directory no longer holds a byte of the content.
 */
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { relayDatabasePath } from '../../server/data-dir.js'
import { until } from '../helpers/events.js'
import { onDisk } from '../helpers/on-disk.js'
import { startRelayProcess, type RelayProcess } from '../helpers/relay-process.js'
import { tempDir } from '../helpers/temp.js'

const root = tempDir()
let n = 0
const running: RelayProcess[] = []
const readers: Database.Database[] = []
afterEach(async () => {
  for (const reader of readers.splice(0)) reader.close()
  await Promise.all(running.splice(0).map(relay => relay.stop('SIGKILL')))
})

const http = (url: string): string => url.replace('ws:', 'http:')

async function relayAt (dataDir: string): Promise<RelayProcess> {
  const relay = await startRelayProcess(dataDir)
  running.push(relay)
  return relay
}

/** A read transaction on the relay's database, holding the pages as they are now (as a backup's copy does). */
function holdSnapshot (dataDir: string): Database.Database {
  const reader = new Database(relayDatabasePath(dataDir), { readonly: true })
  readers.push(reader)
  reader.exec('BEGIN')
  reader.prepare('SELECT count(*) FROM docs').get()
  return reader
}

function release (reader: Database.Database): void {
  reader.close()
  readers.splice(readers.indexOf(reader), 1)
}

/** Polls `check` every 20 ms for at most `timeoutMs`. */
function polled (what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  return until(what, cb => { const timer = setInterval(cb, 20); return () => clearInterval(timer) }, check, timeoutMs)
}

/**
 * Stores `marker` in `docId` on a relay in `dataDir`, deletes it while a reader holds the
 * checkpoint off, and kills the relay with SIGKILL right after the 204: the tombstone is
 * committed, the content is still in the files.
 */
async function interruptedDelete (dataDir: string, docId: string, marker: string): Promise<void> {
  const relay = await relayAt(dataDir)
  const doc = new Y.Doc()
  doc.getText('t').insert(0, marker)
  expect((await fetch(`${http(relay.url)}/v1/docs/${docId}`, { method: 'POST', body: new Uint8Array(Y.encodeStateAsUpdate(doc)) })).status).toBe(200)
  const reader = holdSnapshot(dataDir)
  expect((await fetch(`${http(relay.url)}/v1/docs/${docId}`, { method: 'DELETE' })).status).toBe(204)
  await relay.stop('SIGKILL')
  release(reader)
  expect(onDisk(dataDir, marker), 'the kill must land before the erasure').toBe(true)
}

describe('an interrupted DELETE', () => {
  it('is erased by the next start of the relay, without anyone asking', async () => {
    const dataDir = join(root, `restart-${n++}`)
    const marker = 'MARKER-interrupted-restart-5e1d'
    await interruptedDelete(dataDir, 'erase/restart', marker)
    const relay = await relayAt(dataDir)
    await polled('the restarted relay to erase the deleted content', () => !onDisk(dataDir, marker), 5000)
    expect((await fetch(`${http(relay.url)}/v1/docs/erase/restart`)).status).toBe(404)
  })

  it('is erased by a retried DELETE, which answers 404 as a repeated DELETE does', async () => {
    const dataDir = join(root, `retry-${n++}`)
    const marker = 'MARKER-interrupted-retry-9a07'
    await interruptedDelete(dataDir, 'erase/retry', marker)
    // A reader holds the checkpoint off while the relay starts, so only the retry can erase.
    const reader = holdSnapshot(dataDir)
    const relay = await relayAt(dataDir)
    release(reader)
    expect((await fetch(`${http(relay.url)}/v1/docs/erase/retry`, { method: 'DELETE' })).status).toBe(404)
    expect(onDisk(dataDir, marker)).toBe(false)
  })
})
