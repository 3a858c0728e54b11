/**
 * The `petaldb backup`, `restore`, `export` and `import` commands: their flags and help,
 * and their progress (progress.ts). What each does is in its own module.
 */
import { parseArgs } from 'node:util'
import type { Logger, pino as Pino } from 'pino'
import { requirePeer } from '../../shared/node-peers.js'
import { DataDirError } from '../data-dir.js'
import { backupRelay } from './backup.js'
import type { CopyResult } from './database-copy.js'
import type { RebuildResult } from './database-rebuild.js'
import { exportDocuments } from './export.js'
import { importDocuments } from './import.js'
import { dataDirTarget, relayTarget } from './import-targets.js'
import { Progress, formatBytes } from './progress.js'
import { restoreRelay } from './restore.js'
import { ToolError } from './tool-error.js'

/** Prints one line and exits with `code` (2 for a usage error, 1 for a failure): the CLI's `fail`. */
export type Fail = (message: string, code?: number) => never

const DEFAULT_DATA_DIR = './petal-data'

const PROGRESS_NOTE = `Progress: a bar on stderr when it is a terminal; otherwise JSON lines on stdout
({"event":"progress",...}, {"event":"failed",...}, and a last {"event":"done",...}).`

const BACKUP_USAGE = `Usage: petaldb backup --out FILE [--data DIR] [--force]

Copies a relay's database into FILE, while the relay runs (SQLite's online backup, through a
read-only connection: the relay keeps serving and committing). The backup is the database as
it was when the copy began. Restore it with "petaldb restore".

Flags:
  --data DIR    the relay's data directory (default ${DEFAULT_DATA_DIR})
  --out FILE    the backup file to write
  --force       replace FILE if it exists
  -h, --help    show this help

${PROGRESS_NOTE}
`

const RESTORE_USAGE = `Usage: petaldb restore --from FILE [--data DIR] [--force]

Rebuilds the database of a data directory (created if needed) from a backup: once the
file opens and passes SQLite's integrity check, the rows of its documents are copied into a
new database of PetalDB's own schema, which then replaces the directory's. A row a relay
would not accept refuses the backup, leaving the directory as it was; anything else the
file holds (a trigger, a view, another table or index) is left out, and named. No relay
may run on the directory meanwhile: it is locked while restoring.

Flags:
  --from FILE   the backup file ("petaldb backup")
  --data DIR    the data directory to restore into (default ${DEFAULT_DATA_DIR})
  --force       replace the database the directory already has
  -h, --help    show this help

${PROGRESS_NOTE}
`

const EXPORT_USAGE = `Usage: petaldb export --out DIR2 [--data DIR] [--prefix P]

Writes every document of a relay's database into the new directory DIR2, one file each
holding the whole document as a Yjs v1 update (named after the id, percent-encoded, with
.yjs appended), and manifest.json listing them. Deleted documents are left out. The relay
may be running: the database is read through a read-only connection.

Flags:
  --data DIR    the relay's data directory (default ${DEFAULT_DATA_DIR})
  --out DIR2    the directory to create
  --prefix P    only documents whose id starts with P
  -h, --help    show this help

${PROGRESS_NOTE}
`

const IMPORT_USAGE = `Usage: petaldb import --from DIR2 [--data DIR | --relay URL [--token T]]

Applies each file of an export directory to its document as a Yjs update, checked as the
relay checks a client's update: what the document has is kept, what the file adds is added.
A file that is refused (a symbolic link too: never followed) is reported and the rest
imported; the exit code is then 1.

Into a data directory no relay runs on (its lock is held meanwhile), or, with --relay,
through a running relay's HTTP API (POST /v1/docs/<id>; live clients get the changes, and
in a cluster they reach every home).

Flags:
  --from DIR2   the export directory ("petaldb export"); without manifest.json, every
                .yjs file, its document id decoded from its name
  --data DIR    the data directory to import into (default ${DEFAULT_DATA_DIR})
  --relay URL   import through the relay listening at URL (ws://HOST:PORT or http://HOST:PORT)
  --token T     the relay token (write access), or set PETALDB_TOKEN
  -h, --help    show this help

${PROGRESS_NOTE}
`

/** Parsed flags: a string flag's value, or true for a boolean flag that is set. */
type Flags = Record<string, string | boolean | undefined>

/** Parses `args` by `options` (plus --help); fails with `usage` on an unknown or malformed flag, returns null after printing help. */
function flags (args: string[], options: Record<string, { type: 'string' | 'boolean' }>, usage: string, fail: Fail): Flags | null {
  let values: Flags
  try {
    values = parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false }).values as Flags
  } catch (error) {
    fail(`${(error as Error).message}\n\n${usage}`)
  }
  if (values.help === true) {
    process.stdout.write(usage)
    return null
  }
  return values
}

/** The string flag `name`, if given. */
const text = (values: Flags, name: string): string | undefined => values[name] as string | undefined

/** Runs `task`; a failure it expects (a {@link ToolError}, a held data directory) becomes one line and exit code 1. */
async function run<T> (task: () => Promise<T>, fail: Fail): Promise<T> {
  try {
    return await task()
  } catch (error) {
    if (error instanceof ToolError || error instanceof DataDirError) fail(error.message, 1)
    throw error
  }
}

/** Progress of a copy (pages for backup, rows for restore): started at its first report. */
function copyProgress (command: string, unit: string): { progress: Progress, onProgress: (copied: number, total: number, bytes: number) => void } {
  const progress = new Progress({ command, unit })
  let started = false
  return {
    progress,
    onProgress: (copied, total, bytes) => {
      if (!started) progress.start(total)
      started = true
      progress.update(copied, bytes)
    }
  }
}

function copied (result: CopyResult, where: string): [string, Record<string, number | string>] {
  return [`${formatBytes(result.bytes)} (${result.pages} pages) written to ${where}`, { pages: result.pages, bytes: result.bytes }]
}

function restored (result: RebuildResult, where: string): [string, Record<string, number | string>] {
  const leftOut = result.leftOut.join(', ')
  const note = leftOut === '' ? '' : `; left out, as PetalDB does not create them: ${leftOut}`
  return [
    `${result.documents} documents and ${result.updates} updates (${formatBytes(result.bytes)}) restored into ${where}${note}`,
    { documents: result.documents, updates: result.updates, pages: result.pages, bytes: result.bytes, leftOut }
  ]
}

async function backupCommand (args: string[], fail: Fail): Promise<void> {
  const values = flags(args, { data: { type: 'string' }, out: { type: 'string' }, force: { type: 'boolean' } }, BACKUP_USAGE, fail)
  if (values === null) return
  const out = text(values, 'out')
  if (out === undefined) fail(`--out FILE is required\n\n${BACKUP_USAGE}`)
  const { progress, onProgress } = copyProgress('backup', 'pages')
  const result = await run(() => backupRelay({
    dataDir: text(values, 'data') ?? DEFAULT_DATA_DIR,
    out,
    force: values.force === true,
    onProgress: (pages, total, pageSize) => onProgress(pages, total, pages * pageSize)
  }), fail)
  const [summary, fields] = copied(result, out)
  progress.finish(summary, { out, ...fields })
}

async function restoreCommand (args: string[], fail: Fail): Promise<void> {
  const values = flags(args, { from: { type: 'string' }, data: { type: 'string' }, force: { type: 'boolean' } }, RESTORE_USAGE, fail)
  if (values === null) return
  const from = text(values, 'from')
  if (from === undefined) fail(`--from FILE is required\n\n${RESTORE_USAGE}`)
  const dataDir = text(values, 'data') ?? DEFAULT_DATA_DIR
  const { progress, onProgress } = copyProgress('restore', 'rows')
  const result = await run(() => restoreRelay({ from, dataDir, force: values.force === true, onProgress }), fail)
  const [summary, fields] = restored(result, dataDir)
  progress.finish(summary, { data: dataDir, ...fields })
}

async function exportCommand (args: string[], fail: Fail): Promise<void> {
  const values = flags(args, { data: { type: 'string' }, out: { type: 'string' }, prefix: { type: 'string' } }, EXPORT_USAGE, fail)
  if (values === null) return
  const out = text(values, 'out')
  if (out === undefined) fail(`--out DIR2 is required\n\n${EXPORT_USAGE}`)
  const progress = new Progress({ command: 'export', unit: 'documents' })
  const result = await run(() => exportDocuments({
    dataDir: text(values, 'data') ?? DEFAULT_DATA_DIR,
    out,
    prefix: text(values, 'prefix') ?? '',
    onStart: total => progress.start(total),
    onDocument: bytes => progress.advance(bytes),
    onFailed: (id, reason) => progress.failed({ id, reason })
  }), fail)
  const failed = result.failed === 0 ? '' : `, ${result.failed} failed`
  progress.finish(`${result.exported} documents (${formatBytes(result.bytes)}) written to ${out}, ${result.skipped} deleted or empty skipped${failed}`, { out, ...result })
  if (result.failed > 0) process.exitCode = 1
}

async function importCommand (args: string[], fail: Fail): Promise<void> {
  const values = flags(args, { from: { type: 'string' }, data: { type: 'string' }, relay: { type: 'string' }, token: { type: 'string' } }, IMPORT_USAGE, fail)
  if (values === null) return
  const from = text(values, 'from')
  if (from === undefined) fail(`--from DIR2 is required\n\n${IMPORT_USAGE}`)
  const relay = text(values, 'relay')
  if (relay !== undefined && values.data !== undefined) fail('--data and --relay exclude each other: import into a data directory, or through a running relay')
  const dataDir = text(values, 'data') ?? DEFAULT_DATA_DIR
  if (relay === undefined && values.token !== undefined) fail('--token goes with --relay')
  const token = (text(values, 'token') ?? process.env.PETALDB_TOKEN) || undefined // an empty one is none
  const progress = new Progress({ command: 'import', unit: 'documents' })
  const result = await run(async () => {
    const target = relay === undefined ? dataDirTarget(dataDir, logger()) : relayTarget(relay, token)
    return await importDocuments({
      from,
      target,
      onStart: total => progress.start(total),
      onDocument: bytes => progress.advance(bytes),
      onFailed: (file, id, reason) => progress.failed({ file, id, reason })
    })
  }, fail)
  const failed = result.failed === 0 ? '' : `, ${result.failed} failed`
  progress.finish(`${result.imported} documents (${formatBytes(result.bytes)}) imported into ${relay ?? dataDir}${failed}`, { into: relay ?? dataDir, ...result })
  if (result.failed > 0) process.exitCode = 1
}

/** The log of an import into a data directory (a relay's documents report storage failures there): warnings, on stderr. */
function logger (): Logger {
  const { pino } = requirePeer<{ pino: typeof Pino }>('pino', 'petaldb import')
  return pino<never>({ level: 'warn' }, pino.destination(2))
}

/** The commands by name, each given its arguments and the CLI's `fail`. */
export const TOOL_COMMANDS: Record<string, (args: string[], fail: Fail) => Promise<void>> = {
  backup: backupCommand,
  restore: restoreCommand,
  export: exportCommand,
  import: importCommand
}
