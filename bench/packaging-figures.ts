/**
 * Figures for a browser app installing PetalDB, not part of `npm test` or `npm run bench`
 * (it installs from the npm registry into fresh directories):
 *
 *   npm run build && npx tsx bench/packaging-figures.ts [install] [bundle]
 *
 * - install: time and package count of `npm install` of the packed package into a fresh app
 *   pinning Yjs 13.6.20, for this tree and for the commit before Yjs became a peer dependency
 *   and the Node-only packages optional peers (PETALDB_BEFORE, default 6be7d44^). The earlier
 *   commit is packed from its sources (its dependencies are what an install fetches and
 *   builds). Both use npm's cache (`--prefer-offline`), so the time is resolving, unpacking
 *   and building, not downloading.
 * - bundle: one CodeMirror 6 editor bound to Yjs with y-codemirror.next, synced and stored
 *   with the stock y-websocket + y-indexeddb stack, and with PetalDB (Replica, IndexedDbStore,
 *   a relay URL): minified and gzipped by esbuild, split into Yjs, the editor, and sync.
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'
import { build } from 'esbuild'

const repo = fileURLToPath(new URL('..', import.meta.url))
const BEFORE = process.env.PETALDB_BEFORE ?? '6be7d44^'
const work = mkdtempSync(join(tmpdir(), 'petaldb-packaging-'))

function run (command: string, args: string[], cwd: string): string {
  return execFileSync(command, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 })
}

/** `npm pack` of `dir` into the work directory; the tarball's path. */
function pack (dir: string): string {
  const name = run('npm', ['pack', '--ignore-scripts', '--pack-destination', work], dir).trim().split('\n').pop()!
  return join(work, name)
}

/** A fresh app with `dependencies`, installed; the time it took and the packages it got. */
function install (name: string, dependencies: Record<string, string>): { seconds: number, packages: number, dir: string } {
  const dir = join(work, name)
  mkdirSync(dir)
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, private: true, type: 'module', dependencies }))
  const started = performance.now()
  run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'], dir)
  const seconds = (performance.now() - started) / 1000
  const packages = run('npm', ['ls', '--all', '--parseable'], dir).trim().split('\n').length - 1
  return { seconds, packages, dir }
}

async function installFigures (): Promise<Record<string, string | number>> {
  const beforeSource = join(work, 'before-source')
  mkdirSync(beforeSource)
  execFileSync('sh', ['-c', `git archive ${JSON.stringify(BEFORE)} | tar -x -C ${JSON.stringify(beforeSource)}`], { cwd: repo })
  const beforeCommit = run('git', ['rev-parse', '--short', BEFORE], repo).trim()
  const before = install('app-before', { yjs: '13.6.20', petaldb: `file:${pack(beforeSource)}` })
  const after = install('app-after', { yjs: '13.6.20', petaldb: `file:${pack(repo)}` })
  return {
    [`before (${beforeCommit}): install time (s)`]: round(before.seconds),
    [`before (${beforeCommit}): packages`]: before.packages,
    'after: install time (s)': round(after.seconds),
    'after: packages': after.packages
  }
}

const EDITOR = `
import { EditorView, basicSetup } from 'codemirror'
import { yCollab } from 'y-codemirror.next'
export function mount (ytext, awareness) {
  new EditorView({ doc: ytext.toString(), extensions: [basicSetup, yCollab(ytext, awareness)], parent: document.body })
}
`
const STOCK = `
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { IndexeddbPersistence } from 'y-indexeddb'
import { mount } from './editor.js'
const ydoc = new Y.Doc()
new IndexeddbPersistence('notes/1', ydoc)
const provider = new WebsocketProvider('ws://127.0.0.1:4321', 'notes/1', ydoc)
mount(ydoc.getText('body'), provider.awareness)
`
const PETALDB = `
import { Replica } from 'petaldb'
import { IndexedDbStore } from 'petaldb/browser'
import { mount } from './editor.js'
const replica = new Replica({ store: new IndexedDbStore(), relays: ['ws://127.0.0.1:4321'] })
const handle = replica.doc('notes/1')
mount(handle.ydoc.getText('body'), handle.awareness)
`

/** Which part of the app a bundled file belongs to. */
function partOf (path: string): string {
  const match = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(path)
  const pkg = match?.[1] ?? ''
  if (pkg === 'yjs' || pkg === 'lib0') return 'Yjs'
  if (pkg === '' || pkg === 'codemirror' || pkg.startsWith('@codemirror/') || pkg.startsWith('@lezer/') || ['style-mod', 'w3c-keyname', 'crelt', '@marijn/find-cluster-break', 'y-codemirror.next'].includes(pkg)) return 'editor'
  return 'sync'
}

async function bundleFigures (): Promise<Record<string, string | number>> {
  const app = install('editor-app', {
    yjs: '13.6.20',
    codemirror: '^6.0.1',
    'y-codemirror.next': '^0.3.5',
    'y-websocket': '^3.0.0',
    'y-indexeddb': '^9.0.12',
    petaldb: `file:${pack(repo)}`
  })
  writeFileSync(join(app.dir, 'editor.js'), EDITOR)
  writeFileSync(join(app.dir, 'stock.js'), STOCK)
  writeFileSync(join(app.dir, 'petaldb.js'), PETALDB)
  const figures: Record<string, string | number> = {}
  for (const [stack, entry] of [['y-websocket + y-indexeddb', 'stock.js'], ['PetalDB', 'petaldb.js']] as const) {
    const result = await build({ entryPoints: [join(app.dir, entry)], absWorkingDir: app.dir, bundle: true, minify: true, platform: 'browser', format: 'esm', write: false, metafile: true, logLevel: 'silent' })
    const code = result.outputFiles[0]!.contents
    const parts = new Map<string, number>()
    for (const [path, input] of Object.entries(Object.values(result.metafile.outputs)[0]!.inputs)) {
      parts.set(partOf(path), (parts.get(partOf(path)) ?? 0) + input.bytesInOutput)
    }
    figures[`${stack}: minified (KiB)`] = kib(code.length)
    figures[`${stack}: minified + gzipped (KiB)`] = kib(gzipSync(code).length)
    for (const part of ['Yjs', 'editor', 'sync']) figures[`${stack}: ${part}, minified (KiB)`] = kib(parts.get(part) ?? 0)
  }
  return figures
}

const round = (n: number): number => Math.round(n * 10) / 10
const kib = (bytes: number): number => Math.round(bytes / 1024 * 10) / 10

const cases: Record<string, () => Promise<Record<string, string | number>>> = { install: installFigures, bundle: bundleFigures }
try {
  const wanted = process.argv.slice(2)
  for (const name of wanted.length === 0 ? Object.keys(cases) : wanted) {
    const measure = cases[name]
    if (measure === undefined) throw new Error(`unknown case ${name}; cases: ${Object.keys(cases).join(', ')}`)
    process.stdout.write(`\n## ${name}\n\n| figure | value |\n| --- | --- |\n`)
    for (const [figure, value] of Object.entries(await measure())) process.stdout.write(`| ${figure} | ${value} |\n`)
  }
} finally {
  rmSync(work, { recursive: true, force: true })
}
