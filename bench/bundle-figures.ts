/**
 * Bundle size: what an app adds by importing `petaldb` and `petaldb/browser`, bundled,
 * minified and gzipped by esbuild with Yjs external (the app bundles its one copy anyway),
 * next to `y-websocket` + `y-indexeddb` measured the same way; and the number of copies of
 * Yjs (and of lib0, which both use) in an app that bundles Yjs, PetalDB and nothing else.
 */
import { gzipSync } from 'node:zlib'
import { fileURLToPath } from 'node:url'
import { build, type Metafile } from 'esbuild'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
/** The package's entry points, from source (what `petaldb` and `petaldb/browser` compile from). */
const PETALDB = "export * from './client/index.js'; export * from './client/browser.js'"
const PEERS = "export * from 'y-websocket'; export * from 'y-indexeddb'"

async function bundle (contents: string, external: string[]): Promise<{ bytes: Uint8Array, metafile: Metafile }> {
  const result = await build({
    stdin: { contents, resolveDir: ROOT, loader: 'ts' },
    bundle: true,
    minify: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    write: false,
    external,
    metafile: true,
    logLevel: 'silent'
  })
  return { bytes: result.outputFiles[0]!.contents, metafile: result.metafile }
}

const kib = (bytes: number): number => +(bytes / 1024).toFixed(1)

/** Minified and gzipped sizes of `contents` bundled with Yjs external, and its largest inputs. */
async function measure (contents: string): Promise<{ min: number, gzip: number, largest: string }> {
  const { bytes, metafile } = await bundle(contents, ['yjs'])
  const inputs = Object.entries(Object.values(metafile.outputs)[0]!.inputs)
    .sort((a, b) => b[1].bytesInOutput - a[1].bytesInOutput)
    .slice(0, 6)
    .map(([path, input]) => `${path.replace(/^.*node_modules\//, '')} ${kib(input.bytesInOutput)}`)
  return { min: bytes.length, gzip: gzipSync(bytes, { level: 9 }).length, largest: inputs.join(', ') }
}

/** Distinct packages named `name` (by directory) that went into a bundle. */
function copiesOf (metafile: Metafile, name: string): number {
  const dirs = Object.keys(metafile.inputs)
    .map(path => new RegExp(`^(.*node_modules/${name})/`).exec(path)?.[1])
    .filter((dir): dir is string => dir !== undefined)
  return new Set(dirs).size
}

export async function bundleSizes (): Promise<Record<string, number | string>> {
  const petal = await measure(PETALDB)
  const peers = await measure(PEERS)
  const app = await bundle(`import * as Y from 'yjs'\n${PETALDB}\nexport { Y }`, [])
  return {
    'petaldb + petaldb/browser, minified (KiB)': kib(petal.min),
    'petaldb + petaldb/browser, minified + gzip (KiB)': kib(petal.gzip),
    'y-websocket + y-indexeddb, minified (KiB)': kib(peers.min),
    'y-websocket + y-indexeddb, minified + gzip (KiB)': kib(peers.gzip),
    'PetalDB / peers, gzip': +(petal.gzip / peers.gzip).toFixed(2),
    'copies of yjs in an app bundling yjs + petaldb': copiesOf(app.metafile, 'yjs'),
    'copies of lib0 in that app': copiesOf(app.metafile, 'lib0'),
    'PetalDB largest inputs (KiB minified)': petal.largest,
    'peers largest inputs (KiB minified)': peers.largest
  }
}
