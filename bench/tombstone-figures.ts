/**
 * Figures for deletions that a relay misses or does not finish, before and after their
 * fixes, side by side: each case runs relay processes (the CLI, killed with SIGKILL) of the
 * build of this tree and, when PETALDB_BASELINE names the directory of another build (a
 * checkout of an earlier commit, built with `npm run build`), of that one in the same run.
 * Deleted content is looked for as raw bytes in the relays' data directories. Each case ends
 * by itself within about a minute per build. Not part of `npm test` or `npm run bench`.
 *
 *   npm run build && PETALDB_BASELINE=<dir> npx tsx bench/tombstone-figures.ts [case...]
 *
 * Cases:
 * - returning-home: a 3-relay cluster (R=3, W=2); three documents are deleted through r1
 *   while r3 is stopped, and leave the others' memory; r3 restarts and is read at once (one
 *   document), then left alone for 5 s: what the reader got, and which deleted documents'
 *   bytes remain on r3's disk;
 * - interrupted-delete: 10 rounds, each a document deleted on one relay that is killed
 *   between the tombstone's commit and the erasure (a reader holds the checkpoint off, as a
 *   backup does), then restarted and sent the DELETE again: the rounds whose bytes remain.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'
import * as Y from 'yjs'
import { onDisk } from '../test/helpers/on-disk.js'
import { freePort } from '../test/helpers/relay-process.js'

type Figures = Record<string, string | number>

interface Relay { url: string, http: string, child: ChildProcess }

const running = new Set<ChildProcess>()

async function startRelay (root: string, dataDir: string, port: number, args: string[] = []): Promise<Relay> {
  const child = spawn(process.execPath, [join(root, 'dist/server/cli.js'), 'relay', '--port', String(port), '--data', dataDir, ...args], { stdio: ['ignore', 'pipe', 'ignore'] })
  running.add(child)
  child.once('exit', () => running.delete(child))
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', line => {
      const match = /listening on (ws:\/\/\S+)/.exec(line)
      if (match !== null) resolve(match[1]!)
    })
    child.once('exit', code => reject(new Error(`relay exited with ${code} before listening`)))
  })
  return { url, http: url.replace('ws:', 'http:'), child }
}

async function kill (relay: Relay): Promise<void> {
  if (relay.child.exitCode !== null || relay.child.signalCode !== null) return
  const exited = new Promise(resolve => relay.child.once('exit', resolve))
  relay.child.kill('SIGKILL')
  await exited
}

function textUpdate (text: string): Uint8Array<ArrayBuffer> {
  const doc = new Y.Doc()
  doc.getText('t').insert(0, text)
  return new Uint8Array(Y.encodeStateAsUpdate(doc))
}

const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

async function waitFor (check: () => boolean, ms: number): Promise<void> {
  for (const end = Date.now() + ms; !check() && Date.now() < end;) await sleep(20)
}

const cases: Record<string, (root: string, dir: string) => Promise<Figures>> = {
  'returning-home': async (root, dir) => {
    const ids = ['r1', 'r2', 'r3']
    const ports = await Promise.all(ids.map(() => freePort()))
    const peers = ids.map((id, i) => `${id}=ws://127.0.0.1:${ports[i]}`).join(',')
    const start = (i: number): Promise<Relay> => startRelay(root, join(dir, ids[i]!), ports[i]!, ['--id', ids[i]!, '--members', peers, '--cluster-secret', 'figures', '--copies', '3', '--write-quorum', '2', '--idle-ms', '100'])
    const relays = await Promise.all(ids.map((_, i) => start(i)))
    const names = ['read', 'untouched-1', 'untouched-2']
    const marker = (name: string): string => `MARKER-figures-${name}-71b3`
    for (const name of names) await fetch(`${relays[0]!.http}/v1/docs/gone/${name}`, { method: 'POST', body: textUpdate(marker(name)) })
    await waitFor(() => names.every(name => onDisk(join(dir, 'r3'), marker(name))), 10_000)
    await kill(relays[2]!)
    for (const name of names) await fetch(`${relays[0]!.http}/v1/docs/gone/${name}`, { method: 'DELETE' })
    // Evicted from the others' memory (--idle-ms 100), as they are a while after a deletion.
    await sleep(1000)
    const before = names.filter(name => onDisk(join(dir, 'r3'), marker(name))).length
    relays[2] = await start(2)
    const read = await fetch(`${relays[2].http}/v1/docs/gone/read?format=json`)
    const body = await read.text()
    await sleep(5000)
    const left = names.filter(name => name !== 'read' && onDisk(join(dir, 'r3'), marker(name)))
    return {
      'deleted documents whose bytes are on its disk when it returns': `${before} of ${names.length}`,
      'a fresh reader on the returning home gets': `${read.status}${body.includes(marker('read')) ? ' with the deleted content' : ''}`,
      'documents nobody opened whose bytes remain on its disk 5 s later': `${left.length} of ${names.length - 1}`
    }
  },
  'interrupted-delete': async (root, dir) => {
    const rounds = 10
    let leftAfterRestart = 0
    let leftAfterRetry = 0
    const retryAnswers = new Map<number, number>()
    for (let round = 0; round < rounds; round++) {
      const dataDir = join(dir, `round-${round}`)
      const marker = `MARKER-figures-interrupted-${round}-e4c8`
      const port = await freePort()
      let relay = await startRelay(root, dataDir, port)
      await fetch(`${relay.http}/v1/docs/gone/doc`, { method: 'POST', body: textUpdate(marker) })
      const reader = new Database(join(dataDir, 'relay.db'), { readonly: true })
      reader.exec('BEGIN')
      reader.prepare('SELECT count(*) FROM docs').get()
      await fetch(`${relay.http}/v1/docs/gone/doc`, { method: 'DELETE' })
      await kill(relay)
      reader.close()
      relay = await startRelay(root, dataDir, port)
      await sleep(1000)
      if (onDisk(dataDir, marker)) leftAfterRestart++
      const retry = await fetch(`${relay.http}/v1/docs/gone/doc`, { method: 'DELETE' })
      retryAnswers.set(retry.status, (retryAnswers.get(retry.status) ?? 0) + 1)
      if (onDisk(dataDir, marker)) leftAfterRetry++
      await kill(relay)
    }
    return {
      'rounds whose bytes remain 1 s after the restart': `${leftAfterRestart} of ${rounds}`,
      'rounds whose bytes remain after the retried DELETE': `${leftAfterRetry} of ${rounds}`,
      'the retried DELETE answers': [...retryAnswers].map(([status, count]) => `${status} ×${count}`).join(', ')
    }
  }
}

const here = fileURLToPath(new URL('..', import.meta.url))
const builds = [
  ...(process.env.PETALDB_BASELINE === undefined ? [] : [{ name: 'before', root: process.env.PETALDB_BASELINE }]),
  { name: 'after', root: here }
]
const wanted = process.argv.slice(2)
const commit = (root: string): string => spawnSync('git', ['-C', root, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).stdout.trim() || 'unknown'
console.log(`## Deletions a relay misses or does not finish\n\n${new Date().toISOString().slice(0, 10)}; ${builds.map(build => `${build.name}: ${commit(build.root)}`).join('; ')}.`)
for (const name of wanted.length > 0 ? wanted : Object.keys(cases)) {
  const results = new Map<string, Figures>()
  for (const build of builds) {
    const dir = mkdtempSync(join(tmpdir(), 'petaldb-tombstones-'))
    try {
      results.set(build.name, await cases[name]!(build.root, dir))
    } catch (error) {
      results.set(build.name, { error: (error as Error).message })
    } finally {
      await Promise.all([...running].map(child => kill({ url: '', http: '', child })))
      rmSync(dir, { recursive: true, force: true })
    }
    process.stderr.write(`${name} ${build.name}: ${JSON.stringify(results.get(build.name))}\n`)
  }
  const figures = [...new Set([...results.values()].flatMap(figure => Object.keys(figure)))]
  console.log([
    `\n### ${name}\n`,
    `| figure | ${builds.map(build => build.name).join(' | ')} |`,
    `|---|${builds.map(() => '---').join('|')}|`,
    ...figures.map(figure => `| ${figure} | ${builds.map(build => String(results.get(build.name)?.[figure] ?? '')).join(' | ')} |`)
  ].join('\n'))
}
process.exit(0)
