/**
 * `petaldb export` and `petaldb import` on relay processes: an export of a running relay
 * (and of a stopped one) holds every document but the deleted ones, each file the whole
 * document; importing it into a fresh data directory gives a relay that serves the same
 * documents; a refused file is reported and the rest imported through a running relay; an
 * import into a held data directory, or into a deleted document, is refused; a `.yjs` file
 * that is a symbolic link is refused without reading what it points to.
 */
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { documentJson } from '../../server/http/doc-json.js'
import { MANIFEST_FILE, type Manifest } from '../../server/tools/export-files.js'
import { onDisk } from '../helpers/on-disk.js'
import { runCli, summaryOf } from '../helpers/petaldb-cli.js'
import { startRelayProcess, type RelayProcess } from '../helpers/relay-process.js'
import { tempDir } from '../helpers/temp.js'
import { signToken } from '../helpers/tokens.js'

const root = tempDir()
const running: RelayProcess[] = []
afterAll(async () => { await Promise.all(running.map(relay => relay.stop('SIGKILL'))) })

async function relayAt (dataDir: string, args: string[] = []): Promise<RelayProcess> {
  const relay = await startRelayProcess(dataDir, args)
  running.push(relay)
  return relay
}

const http = (relay: RelayProcess): string => relay.url.replace('ws:', 'http:')

function updateOf (build: (doc: Y.Doc) => void): Uint8Array<ArrayBuffer> {
  const doc = new Y.Doc()
  build(doc)
  return new Uint8Array(Y.encodeStateAsUpdate(doc))
}

async function post (relay: RelayProcess, docId: string, body: Uint8Array<ArrayBuffer>, token?: string): Promise<void> {
  const response = await fetch(`${http(relay)}/v1/docs/${encodeURIComponent(docId)}`, {
    method: 'POST',
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
    body
  })
  expect(response.status).toBe(200)
}

/** The document as the relay renders it, or null if it has none. */
async function served (relay: RelayProcess, docId: string, token?: string): Promise<unknown> {
  const response = await fetch(`${http(relay)}/v1/docs/${encodeURIComponent(docId)}?format=json`, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } })
  if (response.status === 404) return null
  expect(response.status).toBe(200)
  return await response.json()
}

const LONG_ID = `long/${':'.repeat(200)}` // its percent-encoding is too long for a file name
const source = join(root, 'source')
const exported = join(root, 'export')
/** What the source relay serves, by document id. */
const expected = new Map<string, unknown>()
let relay: RelayProcess

beforeAll(async () => {
  // Small compactions: the longer documents hold a snapshot and a log, which the export merges.
  relay = await relayAt(source, ['--compact-min-bytes', '256'])
  const writer = new Y.Doc()
  let sent = Y.encodeStateVector(writer)
  for (let i = 0; i < 40; i++) {
    writer.getText('t').insert(writer.getText('t').length, `line ${i}\n`)
    await post(relay, 'notes/log', new Uint8Array(Y.encodeStateAsUpdate(writer, sent)))
    sent = Y.encodeStateVector(writer)
  }
  await post(relay, 'notes/1', updateOf(doc => doc.getText('t').insert(0, 'first note')))
  await post(relay, 'notes/2', updateOf(doc => doc.getText('t').insert(0, 'second note')))
  await post(relay, 'boards/a:b@c+d=e', updateOf(doc => {
    doc.getMap('cards').set('c1', 'todo')
    doc.getArray('order').push(['c1'])
  }))
  await post(relay, 'prose', updateOf(doc => {
    const paragraph = new Y.XmlElement('p')
    paragraph.insert(0, [new Y.XmlText('hello')])
    doc.getXmlFragment('body').insert(0, [paragraph])
  }))
  await post(relay, LONG_ID, updateOf(doc => doc.getText('t').insert(0, 'long id')))
  await post(relay, 'gone/1', updateOf(doc => doc.getText('t').insert(0, 'deleted')))
  expect((await fetch(`${http(relay)}/v1/docs/gone%2F1`, { method: 'DELETE' })).status).toBe(204)
  for (const id of ['notes/log', 'notes/1', 'notes/2', 'boards/a:b@c+d=e', 'prose', LONG_ID]) expected.set(id, await served(relay, id))
})

describe('petaldb export', () => {
  it('writes every document but the deleted one from a running relay, each file the whole document, and a manifest', async () => {
    const run = await runCli(['export', '--data', source, '--out', exported])
    expect(run.code, run.stderr).toBe(0)
    expect(summaryOf(run)).toMatchObject({ command: 'export', exported: 6, skipped: 1, failed: 0 })
    expect(run.events.some(event => event.event === 'progress' && event.total === 7)).toBe(true)

    const manifest = JSON.parse(readFileSync(join(exported, MANIFEST_FILE), 'utf8')) as Manifest
    expect(manifest.documents.map(doc => doc.id).sort()).toEqual([...expected.keys()].sort())
    const files = new Map(manifest.documents.map(doc => [doc.id, doc.file]))
    expect(files.get('notes/1')).toBe('notes%2F1.yjs')
    expect(files.get('boards/a:b@c+d=e')).toBe('boards%2Fa%3Ab%40c%2Bd%3De.yjs')
    expect(files.get(LONG_ID)).toMatch(/^long%2F(%3A)+![0-9a-f]{32}\.yjs$/)
    expect(files.get(LONG_ID)!.length).toBeLessThan(200)
    expect(readdirSync(exported).sort()).toEqual([...files.values(), MANIFEST_FILE].sort())
    for (const { id, file, bytes } of manifest.documents) {
      const update = readFileSync(join(exported, file))
      expect(update.length).toBe(bytes)
      expect(documentJson(update)).toEqual(expected.get(id))
    }
  })

  it('refuses to write into a directory that exists', async () => {
    const run = await runCli(['export', '--data', source, '--out', exported])
    expect(run.code).toBe(1)
    expect(run.stderr).toBe(`petaldb: ${exported} already exists: export writes a new directory\n`)
  })
})

describe('petaldb import', () => {
  it('into a fresh data directory gives a relay that serves the same documents', async () => {
    const target = join(root, 'imported')
    const run = await runCli(['import', '--data', target, '--from', exported])
    expect(run.code, run.stderr).toBe(0)
    expect(summaryOf(run)).toMatchObject({ imported: 6, failed: 0 })
    const restored = await relayAt(target)
    for (const [id, json] of expected) expect(await served(restored, id)).toEqual(json)
    expect(await served(restored, 'gone/1')).toBeNull()

    // A relay holds the directory now: the import is refused in one line, which points to --relay.
    const refused = await runCli(['import', '--data', target, '--from', exported])
    expect(refused.code).toBe(1)
    expect(refused.stderr).toMatch(new RegExp(`^petaldb: data directory ${target} is in use by another relay \\(pid ${restored.child.pid} .*\\): stop it, or import through it with --relay URL\\n$`))
  })

  it('refuses a .yjs file that is a symbolic link, reading nothing it points to, and imports the rest', async () => {
    const MARKER = 'text-from-outside-the-export-directory'
    const outside = join(root, 'outside')
    mkdirSync(outside)
    writeFileSync(join(outside, 'secret.yjs'), updateOf(doc => doc.getText('t').insert(0, MARKER)))
    const SYMLINK = 'it is a symbolic link: only files inside the export directory are read'

    // Listed in the manifest, in place of an exported file.
    const linked = join(root, 'export-linked')
    cpSync(exported, linked, { recursive: true })
    rmSync(join(linked, 'notes%2F1.yjs'))
    symlinkSync(join(outside, 'secret.yjs'), join(linked, 'notes%2F1.yjs'))
    const target = join(root, 'imported-linked')
    const run = await runCli(['import', '--data', target, '--from', linked])
    expect(run.code).toBe(1)
    expect(run.events.filter(event => event.event === 'failed')).toEqual([expect.objectContaining({ file: 'notes%2F1.yjs', id: 'notes/1', reason: SYMLINK })])
    expect(summaryOf(run)).toMatchObject({ imported: 5, failed: 1 })

    // Found by its name, without a manifest.
    const loose = join(root, 'loose-linked')
    mkdirSync(loose)
    symlinkSync(join(outside, 'secret.yjs'), join(loose, 'notes%2Fsecret.yjs'))
    writeFileSync(join(loose, 'notes%2Finside.yjs'), updateOf(doc => doc.getText('t').insert(0, 'inside')))
    const looseRun = await runCli(['import', '--data', target, '--from', loose])
    expect(looseRun.code).toBe(1)
    expect(looseRun.events.filter(event => event.event === 'failed')).toEqual([expect.objectContaining({ file: 'notes%2Fsecret.yjs', id: 'notes/secret', reason: SYMLINK })])
    expect(summaryOf(looseRun)).toMatchObject({ imported: 1, failed: 1 })

    expect(onDisk(target, MARKER)).toBe(false)
    expect(onDisk(target, 'inside')).toBe(true)
  })

  it('through a running relay reports a refused file and imports the rest, and exits 1', async () => {
    const secret = 'export-import-test-secret-0123456789'
    const target = await relayAt(join(root, 'through-relay'), ['--auth-secret', secret])
    const token = await signToken(secret, { write: ['*'] })
    const broken = join(root, 'export-broken')
    cpSync(exported, broken, { recursive: true })
    writeFileSync(join(broken, 'notes%2F2.yjs'), Buffer.from('not a Yjs update'))

    const run = await runCli(['import', '--relay', target.url, '--from', broken], { env: { ...process.env, PETALDB_TOKEN: token } })
    expect(run.code).toBe(1)
    const failed = run.events.filter(event => event.event === 'failed')
    expect(failed).toEqual([expect.objectContaining({ file: 'notes%2F2.yjs', id: 'notes/2', reason: expect.stringMatching(/^the relay answered 400: /) })])
    expect(summaryOf(run)).toMatchObject({ imported: 5, failed: 1 })
    for (const [id, json] of expected) expect(await served(target, id, token)).toEqual(id === 'notes/2' ? null : json)

    // Without the token the relay refuses every document; each is reported.
    const anonymous = await runCli(['import', '--relay', target.url, '--from', broken], { env: { ...process.env, PETALDB_TOKEN: '' } })
    expect(anonymous.code).toBe(1)
    expect(summaryOf(anonymous)).toMatchObject({ imported: 0, failed: 6 })
  })

  it('refuses an update to a deleted document, and takes .yjs files named after their ids without a manifest', async () => {
    await relay.stop('SIGTERM')
    const loose = join(root, 'loose')
    mkdirSync(loose)
    writeFileSync(join(loose, 'gone%2F1.yjs'), updateOf(doc => doc.getText('t').insert(0, 'back again')))
    writeFileSync(join(loose, 'notes%2Fnew.yjs'), updateOf(doc => doc.getText('t').insert(0, 'new note')))
    writeFileSync(join(loose, 'not an id.yjs'), updateOf(doc => doc.getText('t').insert(0, 'x')))
    const run = await runCli(['import', '--data', source, '--from', loose])
    expect(run.code).toBe(1)
    expect(run.events.filter(event => event.event === 'failed').map(event => [event.file, event.reason]).sort()).toEqual([
      ['gone%2F1.yjs', 'document gone/1 was deleted'],
      ['not an id.yjs', 'its name is not a percent-encoded document id (a hashed name needs the manifest)']
    ])
    expect(summaryOf(run)).toMatchObject({ imported: 1, failed: 2 })

    // The export of a stopped relay's data: the same documents, and the new one.
    const again = join(root, 'export-stopped')
    const exportRun = await runCli(['export', '--data', source, '--out', again, '--prefix', 'notes/'])
    expect(exportRun.code, exportRun.stderr).toBe(0)
    const manifest = JSON.parse(readFileSync(join(again, MANIFEST_FILE), 'utf8')) as Manifest
    expect(manifest.documents.map(doc => doc.id)).toEqual(['notes/1', 'notes/2', 'notes/log', 'notes/new'])
    expect(documentJson(readFileSync(join(again, 'notes%2Flog.yjs')))).toEqual(expected.get('notes/log'))
    // Read-only: the export wrote nothing (SQLite leaves an empty write-ahead log beside a WAL database a reader opened).
    const wal = join(source, 'relay.db-wal')
    expect(existsSync(wal) ? statSync(wal).size : 0).toBe(0)
  })
})
