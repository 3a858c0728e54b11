/**
 * `petaldb backup` and `petaldb restore` on relay processes: a backup taken while native
 * replicas keep writing restores to a relay that serves every document, with everything
 * acknowledged before the backup began (and nothing the relay never had); the relay goes
 * on committing while the backup runs. Restore refuses a data directory a relay holds, one
 * that has a database (unless --force), a file that is not a sound relay database, and one
 * holding a row a relay would not accept (leaving the directory as it was); it copies the
 * rows into a database of PetalDB's own schema, so that nothing else a backup carries (a
 * trigger that deletes every stored update, a view, a table) reaches the relay. Backup
 * refuses to overwrite a file (unless --force). Underneath, the copy is of one snapshot
 * and never starts over, however often another connection writes, and never makes it wait.
 */
import { copyFileSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import Database from 'better-sqlite3'
import { Replica } from '../../client/replica.js'
import { SqliteStore } from '../../client/node.js'
import { copyDatabase } from '../../server/tools/database-copy.js'
import { runCli, summaryOf } from '../helpers/petaldb-cli.js'
import { startRelayProcess, type RelayProcess } from '../helpers/relay-process.js'
import { tempDir } from '../helpers/temp.js'

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

/** A copy of the backup, altered by `tamper` as a hostile backup would be. */
function tampered (name: string, tamper: (db: Database.Database) => void): string {
  const path = join(root, name)
  copyFileSync(backupFile, path)
  const db = new Database(path)
  try {
    tamper(db)
  } finally {
    db.close()
  }
  return path
}

/** The schema of the database at `path`: every object SQLite lists, as created. */
function schemaOf (path: string): unknown[] {
  const db = new Database(path, { readonly: true })
  try {
    return db.prepare('SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name').all()
  } finally {
    db.close()
  }
}

/** How many rows the database at `path` has in its docs and updates tables. */
function rowCounts (path: string): { docs: unknown, updates: unknown } {
  const db = new Database(path, { readonly: true })
  try {
    return { docs: db.prepare('SELECT count(*) FROM docs').pluck().get(), updates: db.prepare('SELECT count(*) FROM updates').pluck().get() }
  } finally {
    db.close()
  }
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
    const counts = rowCounts(backupFile)
    expect(summaryOf(restore)).toMatchObject({ command: 'restore', data: target, documents: counts.docs, updates: counts.updates, leftOut: '' })

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

  it('leaves out a trigger that deletes every stored update: ten writes a relay on the restored data acknowledged survive its crash', async () => {
    const hostile = tampered('trigger.backup', db => db.exec('CREATE TRIGGER forget AFTER INSERT ON updates BEGIN DELETE FROM updates WHERE seq = new.seq; END'))
    const target = join(root, 'restored-trigger')
    const run = await runCli(['restore', '--from', hostile, '--data', target])
    expect(run.code, run.stderr).toBe(0)
    expect(summaryOf(run)).toMatchObject({ leftOut: 'trigger forget' })

    let restored = await relayAt(target)
    const writer = new Y.Doc()
    let sent = Y.encodeStateVector(writer)
    for (let i = 0; i < 10; i++) {
      writer.getText('t').insert(writer.getText('t').length, `write ${i};`)
      const response = await fetch(`${restored.url.replace('ws:', 'http:')}/v1/docs/after%2Frestore`, { method: 'POST', body: new Uint8Array(Y.encodeStateAsUpdate(writer, sent)) })
      expect(response.status).toBe(200) // durable
      sent = Y.encodeStateVector(writer)
    }
    await restored.stop('SIGKILL')
    restored = await relayAt(target)
    expect(await servedText(restored, 'after/restore')).toBe(writer.getText('t').toString())
    await restored.stop()
  })

  it('restores a backup carrying a table, a view, an index, a trigger and an altered table with PetalDB\'s schema alone, naming what it left out', async () => {
    const hostile = tampered('extras.backup', db => db.exec(`
      CREATE TABLE stash (x);
      CREATE VIEW everything AS SELECT * FROM docs;
      CREATE INDEX docs_by_meta ON docs (meta);
      CREATE TRIGGER wipe AFTER UPDATE ON docs BEGIN DELETE FROM docs; END;
      ALTER TABLE updates ADD COLUMN note TEXT DEFAULT 'x';
    `))
    const target = join(root, 'restored-extras')
    const run = await runCli(['restore', '--from', hostile, '--data', target])
    expect(run.code, run.stderr).toBe(0)
    expect(summaryOf(run)).toMatchObject({ leftOut: 'index docs_by_meta, table stash, trigger wipe, view everything' })

    const fresh = join(root, 'fresh.db')
    await new SqliteStore(fresh).close()
    expect(schemaOf(join(target, 'relay.db'))).toEqual(schemaOf(fresh))
    expect(rowCounts(join(target, 'relay.db'))).toEqual(rowCounts(backupFile))
  })

  it('refuses a backup holding a row a relay would not accept, naming it, and leaves the data directory as it was', async () => {
    const target = join(root, 'restored')
    const database = join(target, 'relay.db')
    const before = readFileSync(database)
    const files = readdirSync(target).sort()
    const cases: Array<[string, string, RegExp]> = [
      ['bad-id.backup', 'INSERT INTO docs (id) VALUES (\'../outside\')', /holds a docs row a relay would not accept \(id "\.\.\/outside": document id has a "\." or "\.\." path segment\): not restored$/],
      ['text-update.backup', 'INSERT INTO updates (seq, doc, data) VALUES (1000000, \'notes/1\', \'not a blob\')', /holds an updates row a relay would not accept \(seq 1000000: data is text, not a blob\): not restored$/],
      ['integer-snapshot.backup', 'INSERT INTO docs (id, snapshot) VALUES (\'notes/odd\', 42)', /holds a docs row a relay would not accept \(id "notes\/odd": snapshot is an integer, not a blob\): not restored$/]
    ]
    for (const [name, tamper, problem] of cases) {
      const hostile = tampered(name, db => db.exec(tamper))
      const run = await runCli(['restore', '--from', hostile, '--data', target, '--force'])
      expect(run.code, name).toBe(1)
      const line = failureLine(run.stderr)
      expect(line.startsWith(`petaldb: ${hostile} `), line).toBe(true)
      expect(line).toMatch(problem)
      expect(readFileSync(database).equals(before), name).toBe(true)
      expect(readdirSync(target).sort()).toEqual(files)
    }
  })
})
