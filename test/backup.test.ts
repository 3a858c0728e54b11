/**
 * `petaldb backup` and `petaldb restore` on relay processes: a backup taken while native
 * replicas keep writing restores to a relay that serves every document, with everything
 * acknowledged before the backup began (and nothing the relay never had); the relay goes
 * on committing while the backup runs. Restore refuses a data directory a relay holds, one
 * that has a database (unless --force), and a file that is not a sound relay database;
 * backup refuses to overwrite a file (unless --force). Underneath, the copy is of one snapshot
 * and never starts over, however often another connection writes, and never makes it wait.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import Database from 'better-sqlite3'
import { Replica } from '../client/replica.js'
import { SqliteStore } from '../client/node.js'
import { copyDatabase } from '../server/tools/database-copy.js'
import { runCli, summaryOf } from './helpers/petaldb-cli.js'
import { startRelayProcess, type RelayProcess } from './helpers/relay-process.js'
import { tempDir } from './helpers/temp.js'

const root = tempDir()
const running: RelayProcess[] = []
afterAll(async () => { await Promise.all(running.map(relay => relay.stop('SIGKILL'))) })

async function relayAt (dataDir: string): Promise<RelayProcess> {
  const relay = await startRelayProcess(dataDir)
  running.push(relay)
  return relay
}

/** The text `t` of a document as the relay serves it, or null if it has none. */
async function servedText (relay: RelayProcess, docId: string): Promise<string | null> {
  const response = await fetch(`${relay.url.replace('ws:', 'http:')}/v1/docs/${encodeURIComponent(docId)}?format=json`)
  if (response.status === 404) return null
  expect(response.status).toBe(200)
  return ((await response.json()) as { t: string }).t
}

/** The one line a failure prints. */
function failureLine (stderr: string): string {
  const lines = stderr.split('\n').filter(line => line !== '')
  expect(lines).toHaveLength(1)
  return lines[0]!
}

const DOCS = ['notes/1', 'notes/2', 'notes/3', 'boards/a', 'boards/b', 'chat']
const BULK = 'bulk/1'
const source = join(root, 'source')
const backupFile = join(root, 'relay.backup')
let relay: RelayProcess

beforeAll(async () => {
  relay = await relayAt(source)
  // A few megabytes, so that the copy takes several steps while the replicas write.
  const bulk = new Y.Doc()
  bulk.getText('t').insert(0, 'x'.repeat(3 * 1024 * 1024))
  const response = await fetch(`${relay.url.replace('ws:', 'http:')}/v1/docs/${BULK}`, { method: 'POST', body: new Uint8Array(Y.encodeStateAsUpdate(bulk)) })
  expect(response.status).toBe(200)
})

describe('petaldb backup', () => {
  it('taken under write load restores to a relay that serves every document acknowledged before it began', async () => {
    const replica = new Replica({ store: new SqliteStore(join(root, 'replica.db')), relays: [relay.url] })
    const handles = DOCS.map(id => replica.doc(id))
    await Promise.all(handles.map(handle => handle.synced()))
    let round = 0
    const write = (): void => {
      for (const handle of handles) {
        const text = handle.ydoc.getText('t')
        text.insert(text.length, `${round};`)
      }
      round++
    }
    const load = setInterval(write, 2)
    let before: string[]
    let final: string[]
    let committedDuringBackup: number
    let backup
    try {
      await relay.waitForCommitted(100)
      // What the relay has acknowledged: the texts as they are now, once durable.
      before = handles.map(handle => handle.ydoc.getText('t').toString())
      await Promise.all(handles.map(handle => handle.durable()))

      const committed = relay.committedUpdates()
      backup = await runCli(['backup', '--data', source, '--out', backupFile])
      committedDuringBackup = relay.committedUpdates() - committed
    } finally {
      clearInterval(load)
    }
    final = handles.map(handle => handle.ydoc.getText('t').toString())
    await Promise.all(handles.map(handle => handle.durable()))
    await replica.close()

    expect(backup.code, backup.stderr).toBe(0)
    expect(committedDuringBackup).toBeGreaterThan(0) // the relay went on committing
    const summary = summaryOf(backup)
    expect(summary).toMatchObject({ command: 'backup', out: backupFile })
    expect(summary.bytes).toBeGreaterThan(3 * 1024 * 1024)
    expect(backup.events[0]).toMatchObject({ event: 'progress', unit: 'pages', done: 0 })

    const target = join(root, 'restored')
    const restore = await runCli(['restore', '--from', backupFile, '--data', target])
    expect(restore.code, restore.stderr).toBe(0)
    expect(summaryOf(restore)).toMatchObject({ command: 'restore', data: target, pages: summary.pages })

    const restored = await relayAt(target)
    for (const [i, id] of DOCS.entries()) {
      const text = await servedText(restored, id)
      expect(text?.startsWith(before[i]!), `${id} lacks acknowledged edits`).toBe(true)
      expect(final[i]!.startsWith(text!), `${id} holds what was never written`).toBe(true)
    }
    expect((await servedText(restored, BULK))?.length).toBe(3 * 1024 * 1024)
    await restored.stop()
  })

  it('refuses to replace a file unless --force', async () => {
    const again = await runCli(['backup', '--data', source, '--out', backupFile])
    expect(again.code).toBe(1)
    expect(failureLine(again.stderr)).toBe(`petaldb: ${backupFile} already exists: pass --force to replace it`)
    const forced = await runCli(['backup', '--data', source, '--out', backupFile, '--force'])
    expect(forced.code, forced.stderr).toBe(0)
  })
})

describe('the database copy', () => {
  it('copies one snapshot, never starting over, while another connection writes between every step without waiting', async () => {
    const path = join(root, 'busy.db')
    const writer = new Database(path, { timeout: 0 }) // a writer made to wait would fail at once with SQLITE_BUSY
    writer.pragma('journal_mode = WAL')
    writer.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)')
    const insert = writer.prepare('INSERT INTO t (v) VALUES (?)')
    writer.transaction(() => { for (let i = 0; i < 5000; i++) insert.run(Buffer.alloc(1000, i)) })()
    const source = new Database(path, { readonly: true })
    let steps = 0
    const copy = join(root, 'busy.copy')
    await copyDatabase(source, copy, () => {
      // The backup API starts over after another connection's write, unless the copy holds its read transaction.
      if (++steps > 50) throw new Error('the copy keeps starting over')
      insert.run(Buffer.alloc(1000, 1))
    })
    source.close()
    expect(steps).toBeGreaterThan(3)
    expect(writer.prepare('SELECT count(*) FROM t').pluck().get()).toBe(5000 + steps)
    writer.close()
    const copied = new Database(copy, { readonly: true })
    expect(copied.prepare('SELECT count(*) FROM t').pluck().get()).toBe(5000)
    expect(copied.pragma('integrity_check', { simple: true })).toBe('ok')
    expect(copied.pragma('journal_mode', { simple: true })).toBe('delete')
    copied.close()
  })
})

describe('petaldb restore', () => {
  it('refuses a data directory a relay holds, in one line naming it', async () => {
    const run = await runCli(['restore', '--from', backupFile, '--data', source])
    expect(run.code).toBe(1)
    expect(failureLine(run.stderr)).toMatch(new RegExp(`^petaldb: data directory ${source} is in use by another relay \\(pid ${relay.child.pid} .*\\): stop it before restoring into its data directory$`))
    expect(await servedText(relay, BULK)).not.toBeNull() // and the relay goes on
  })

  it('refuses a data directory that has a database unless --force', async () => {
    const target = join(root, 'restored')
    const run = await runCli(['restore', '--from', backupFile, '--data', target])
    expect(run.code).toBe(1)
    expect(failureLine(run.stderr)).toBe(`petaldb: ${target} already has a database (${join(target, 'relay.db')}): pass --force to replace it`)
    const forced = await runCli(['restore', '--from', backupFile, '--data', target, '--force'])
    expect(forced.code, forced.stderr).toBe(0)
    const restored = await relayAt(target)
    expect((await servedText(restored, BULK))?.length).toBe(3 * 1024 * 1024)
    await restored.stop()
  })

  it('refuses a file that is not a relay database', async () => {
    const garbage = join(root, 'garbage.backup')
    writeFileSync(garbage, Buffer.alloc(8192, 7))
    const run = await runCli(['restore', '--from', garbage, '--data', join(root, 'never')])
    expect(run.code).toBe(1)
    expect(failureLine(run.stderr)).toMatch(new RegExp(`^petaldb: ${garbage} is not a readable SQLite database: `))
  })
})
