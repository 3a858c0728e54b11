/**
 * The package as an app gets it: packed with `npm pack` and installed into a fresh app that
 * pins another Yjs 13.6 release. A browser bundle of the app holds one copy of Yjs, the app
 * installs no native module and no server-only package, the relay command says what to
 * install for it, and with those packages next to it the relay starts and serves.
 */
import { execFileSync, spawn } from 'node:child_process'
import { mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createInterface } from 'node:readline'
import { build } from 'esbuild'
import { beforeAll, describe, expect, it } from 'vitest'
import { stockClient } from '../helpers/stock-client.js'
import { tempDir } from '../helpers/temp.js'

const repo = fileURLToPath(new URL('../..', import.meta.url))
const RELAY_PACKAGES = ['better-sqlite3', 'ws', 'pino', 'jose', 'prom-client']
const app = join(tempDir('petaldb-app-'), 'app')

describe('the packed package in a fresh app', { timeout: 180_000 }, () => {
  beforeAll(() => {
    mkdirSync(app, { recursive: true })
    const packed = execFileSync('npm', ['pack', '--ignore-scripts', '--pack-destination', app], { cwd: repo, encoding: 'utf8' }).trim().split('\n').pop()!
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'an-app', private: true, type: 'module', dependencies: { yjs: '13.6.20', petaldb: `file:./${packed}` } }))
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'], { cwd: app, stdio: 'ignore' })
  }, 180_000)

  it('installs no native module and no server-only package, and one Yjs', () => {
    const installed = readdirSync(join(app, 'node_modules'))
    expect(installed.filter(name => [...RELAY_PACKAGES, 'pg'].includes(name))).toEqual([])
    expect(readdirSync(join(app, 'node_modules', 'petaldb'))).not.toContain('node_modules')
    const versions = execFileSync('npm', ['ls', 'yjs', '--all', '--parseable', '--long'], { cwd: app, encoding: 'utf8' }).trim().split('\n').filter(line => line.includes('yjs@'))
    expect(versions.map(line => line.split(':')[1])).toEqual(['yjs@13.6.20'])
  })

  it('bundles one copy of Yjs for the browser, the app\'s', async () => {
    writeFileSync(join(app, 'main.js'), [
      "import * as Y from 'yjs'",
      "import { Replica } from 'petaldb'",
      "import { IndexedDbStore } from 'petaldb/browser'",
      'const replica = new Replica({ store: new IndexedDbStore() })',
      "replica.open('notes/1').then(doc => console.log(doc instanceof Y.Doc))"
    ].join('\n'))
    const result = await build({ entryPoints: [join(app, 'main.js')], absWorkingDir: app, bundle: true, platform: 'browser', format: 'esm', write: false, metafile: true, logLevel: 'silent' })
    const bundle = result.outputFiles[0]!.text
    expect(bundle.match(/Yjs was already imported/g) ?? []).toHaveLength(1)
    const yjsFiles = Object.keys(result.metafile.inputs).filter(path => path.includes('node_modules/yjs/'))
    expect(new Set(yjsFiles.map(path => path.slice(0, path.indexOf('node_modules/yjs/'))))).toEqual(new Set(['']))
    expect(Object.keys(result.metafile.inputs).filter(path => /node_modules\/(ws|better-sqlite3|pino|jose|prom-client|pg)\//.test(path))).toEqual([])
  })

  it('says to import petaldb/node when a Node script gives a relay URL with only petaldb imported', () => {
    const script = "import { Replica, MemoryStore } from 'petaldb'; new Replica({ store: new MemoryStore(), relays: ['ws://127.0.0.1:4321'] })"
    let stderr = ''
    try {
      execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: app, encoding: 'utf8', stdio: 'pipe' })
    } catch (error) {
      stderr = (error as { stderr: string }).stderr
    }
    expect(stderr).toContain('no WebSocket implementation')
    expect(stderr).toContain('petaldb/node')
    expect(stderr).not.toContain('before initialization')
  })

  it('tells what to install for the relay, and with it installed, serves', async () => {
    const cli = join(app, 'node_modules', '.bin', 'petaldb')
    let refusal = ''
    try {
      execFileSync(cli, ['relay'], { cwd: app, encoding: 'utf8', stdio: 'pipe' })
    } catch (error) {
      refusal = (error as { stderr: string }).stderr
    }
    expect(refusal).toContain(`npm install ${RELAY_PACKAGES.join(' ')}`)
    // A relay on PostgreSQL needs its driver instead of SQLite.
    let onPostgres = ''
    try {
      execFileSync(cli, ['relay', '--postgres', 'postgres://127.0.0.1:1/db'], { cwd: app, encoding: 'utf8', stdio: 'pipe' })
    } catch (error) {
      onPostgres = (error as { stderr: string }).stderr
    }
    expect(onPostgres).toContain('npm install ws pino jose prom-client pg')
    // The relay's packages, as `npm install` would put them next to petaldb (linked to this checkout's copies).
    for (const name of RELAY_PACKAGES) symlinkSync(join(repo, 'node_modules', name), join(app, 'node_modules', name))
    const relay = spawn(cli, ['relay', '--port', '0', '--data', join(app, 'data')], { cwd: app, stdio: ['ignore', 'pipe', 'ignore'] })
    try {
      const url = await new Promise<string>((resolve, reject) => {
        createInterface({ input: relay.stdout! }).on('line', line => { const match = /listening on (ws:\/\/\S+)/.exec(line); if (match !== null) resolve(match[1]!) })
        relay.once('exit', code => reject(new Error(`relay exited with ${code}`)))
      })
      const client = stockClient(url, 'packaged')
      await client.synced()
      client.destroy()
    } finally {
      relay.kill('SIGTERM')
    }
  })
})
