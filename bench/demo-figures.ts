/**
 * The notes demo's page bundle (`/app.js`, exactly as `npm run demo` serves it), minified
 * and gzipped, split into Yjs, the editor, PetalDB and the app itself:
 *
 *   npx tsx bench/demo-figures.ts
 *
 * Minified bytes per part come from esbuild's metafile. Gzipped bytes per part are each
 * part's output bytes (found through the source map) gzipped alone, so they add up to a
 * little more than the whole bundle gzipped, which shares one dictionary.
 */
import { gzipSync } from 'node:zlib'
import { buildShell } from '../examples/notes/bundle.js'

const PARTS = ['Yjs', 'editor', 'PetalDB', 'the notes app', 'bundler glue'] as const
type Part = typeof PARTS[number]

const EDITOR_PACKAGES = ['y-codemirror.next', 'style-mod', 'w3c-keyname', 'crelt', '@marijn/find-cluster-break']

/** Which part a bundled input (a path relative to the repository) belongs to; throws for one it does not know. */
function partOf (path: string): Part {
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(path)?.[1]
  if (pkg === undefined) {
    if (/^(client|shared)\//.test(path)) return 'PetalDB'
    if (path.startsWith('examples/notes/')) return 'the notes app'
  } else {
    if (pkg === 'yjs' || pkg === 'lib0') return 'Yjs'
    if (pkg.startsWith('@codemirror/') || pkg.startsWith('@lezer/') || EDITOR_PACKAGES.includes(pkg)) return 'editor'
    if (pkg === 'y-protocols' || pkg === 'idb') return 'PetalDB'
  }
  throw new Error(`no part for bundled input ${path}: add it to partOf`)
}

const BASE64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'

/** The values of one source map segment (base64 VLQ). */
function decodeSegment (segment: string): number[] {
  const values: number[] = []
  let value = 0
  let shift = 0
  for (const char of segment) {
    const digit = BASE64.indexOf(char)
    value += (digit & 31) << shift
    if ((digit & 32) !== 0) {
      shift += 5
      continue
    }
    values.push((value & 1) === 1 ? -(value >>> 1) : value >>> 1)
    value = 0
    shift = 0
  }
  return values
}

/** The output text of each part, cut where the source map says the source file changes. */
function splitBySource (code: string, map: { sources: string[], mappings: string }, sourcePart: (source: string) => Part): Map<Part, string> {
  const pieces = new Map<Part, string[]>(PARTS.map(part => [part, []]))
  const lines = code.split('\n')
  let source = 0
  map.mappings.split(';').forEach((mapped, lineNumber) => {
    const line = lines[lineNumber] ?? ''
    const cuts: Array<{ column: number, part: Part }> = [{ column: 0, part: 'bundler glue' }]
    let column = 0
    for (const segment of mapped === '' ? [] : mapped.split(',')) {
      const [columnDelta = 0, sourceDelta] = decodeSegment(segment)
      column += columnDelta
      if (sourceDelta !== undefined) source += sourceDelta
      cuts.push({ column, part: sourceDelta === undefined ? 'bundler glue' : sourcePart(map.sources[source]!) })
    }
    cuts.forEach(({ column, part }, i) => pieces.get(part)!.push(line.slice(column, cuts[i + 1]?.column ?? line.length)))
    pieces.get('bundler glue')!.push('\n')
  })
  return new Map([...pieces].map(([part, texts]) => [part, texts.join('')]))
}

const kib = (bytes: number): string => (bytes / 1024).toFixed(1)
const gzipped = (bytes: Uint8Array | string): number => gzipSync(bytes, { level: 9 }).length

const shell = await buildShell('ws://127.0.0.1:4381')
const app = shell.files.get('/app.js')!.body
const map = JSON.parse(new TextDecoder().decode(shell.files.get('/app.js.map')!.body)) as { sources: string[], mappings: string }
const output = Object.values(shell.metafile.outputs).find(output => output.entryPoint !== undefined)!
const minified = new Map<Part, number>(PARTS.map(part => [part, 0]))
for (const [path, input] of Object.entries(output.inputs)) minified.set(partOf(path), minified.get(partOf(path))! + input.bytesInOutput)
const texts = splitBySource(new TextDecoder().decode(app), map, partOf)
minified.set('bundler glue', app.length - [...minified.values()].reduce((a, b) => a + b, 0))

process.stdout.write('| part | minified (KiB) | gzipped (KiB) |\n| --- | --- | --- |\n')
for (const part of PARTS) {
  if (minified.get(part)! < 64) continue // esbuild's few bytes of glue
  process.stdout.write(`| ${part} | ${kib(minified.get(part)!)} | ${kib(gzipped(texts.get(part)!))} |\n`)
}
process.stdout.write(`| **whole /app.js** | ${kib(app.length)} | ${kib(gzipped(app))} |\n`)
process.stdout.write(`\nservice worker /sw.js: ${shell.files.get('/sw.js')!.body.length} bytes minified; style.css: ${kib(shell.files.get('/style.css')!.body.length)} KiB; gzip level 9\n`)
