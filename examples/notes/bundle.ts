/**
 * Builds the notes demo's app shell with esbuild: the page (index.html naming the relay),
 * its style, the app bundle (src/main.ts) and the service worker (src/sw.ts), which is
 * told the shell's paths and a hash of their content as its version.
 */
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { build, type Metafile } from 'esbuild'

/** One file the demo serves. */
export interface ShellFile {
  type: string
  body: Uint8Array
}

/** The built shell: files by URL path, and esbuild's metafile of the app bundle. */
export interface Shell {
  files: Map<string, ShellFile>
  /** The app bundle's metafile (what each input contributes to `/app.js`). */
  metafile: Metafile
  /** A hash of the cached files' content. */
  version: string
}

const here = (path: string): string => fileURLToPath(new URL(path, import.meta.url))
/** The repository: input paths in the metafile and the source map are relative to it. */
const root = here('../../')

/** The paths the service worker caches (the source map is not needed offline). */
export const CACHED_PATHS = ['/', '/app.js', '/style.css']

const JS = 'text/javascript; charset=utf-8'

/** Builds the shell for a page syncing with the relay at `relayUrl`. */
export async function buildShell (relayUrl: string): Promise<Shell> {
  const common = { absWorkingDir: root, bundle: true, minify: true, platform: 'browser', target: 'es2022', write: false, logLevel: 'silent' } as const
  const app = await build({ ...common, entryPoints: { app: here('./src/main.ts') }, format: 'esm', outdir: root, sourcemap: 'linked', metafile: true })
  const output = (name: string): Uint8Array => app.outputFiles.find(file => file.path.endsWith(name))!.contents
  const html = (await readFile(here('./index.html'), 'utf8')).replace('%RELAY_URL%', escapeAttribute(relayUrl))
  const files = new Map<string, ShellFile>([
    ['/', { type: 'text/html; charset=utf-8', body: new TextEncoder().encode(html) }],
    ['/app.js', { type: JS, body: output('/app.js') }],
    ['/app.js.map', { type: 'application/json', body: output('/app.js.map') }],
    ['/style.css', { type: 'text/css; charset=utf-8', body: await readFile(here('./style.css')) }]
  ])
  const hash = createHash('sha256')
  for (const path of CACHED_PATHS) hash.update(files.get(path)!.body)
  const version = hash.digest('hex').slice(0, 16)
  const worker = await build({
    ...common,
    entryPoints: [here('./src/sw.ts')],
    format: 'iife',
    define: { SHELL_VERSION: JSON.stringify(version), SHELL_FILES: JSON.stringify(CACHED_PATHS) }
  })
  files.set('/sw.js', { type: JS, body: worker.outputFiles[0]!.contents })
  return { files, metafile: app.metafile, version }
}

function escapeAttribute (value: string): string {
  return value.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;')
}
