/**
 * The layout of an export directory: one file per document holding the whole document as a
 * Yjs v1 update, and `manifest.json` listing them.
 *
 * A file is named after its document: the id percent-encoded (`encodeURIComponent`, so `/`
 * becomes `%2F`) and `.yjs` appended, which decodes back to the id. Two cases cannot use
 * that name: an id whose encoding is too long for a file name (ids reach 256 characters,
 * and an encoded character takes three), and two ids that differ only in case on a file
 * system that ignores case. Such a file gets a hashed name instead, its encoded id cut
 * short, `!` and a hash of the id; `!` is never in a document id, so a hashed name never
 * equals another's plain name, and the manifest says which id it holds.
 *
 * An export directory may come from anyone: its files are read only if they are regular
 * files in it, never through a symbolic link (which could lead anywhere on the machine).
 */
import { createHash } from 'node:crypto'
import { closeSync, constants, fstatSync, lstatSync, openSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseDocId, type DocId } from '../../shared/wire/doc-id.js'
import { ToolError } from './tool-error.js'

/** The manifest's file name in an export directory. */
export const MANIFEST_FILE = 'manifest.json'

/** What `format` says in a manifest. */
export const EXPORT_FORMAT = 'petaldb-export'

/** Extension of a document's file. */
const SUFFIX = '.yjs'

/** Longest file name used, in bytes (file systems allow 255). */
const MAX_NAME_BYTES = 200

/** A document in a manifest. */
export interface ManifestEntry {
  id: string
  /** Its file in the export directory. */
  file: string
  /** Size of the file. */
  bytes: number
}

/** `manifest.json`. */
export interface Manifest {
  format: typeof EXPORT_FORMAT
  version: 1
  /** When the export ran (ISO 8601). */
  exportedAt: string
  /** The prefix exported documents were chosen by ('' for all). */
  prefix: string
  documents: ManifestEntry[]
}

/** The plain file name of `docId`, or a hashed one when that would be too long (see the module comment). */
export function fileNameOf (docId: DocId): string {
  const name = encodeURIComponent(docId) + SUFFIX
  return Buffer.byteLength(name) <= MAX_NAME_BYTES ? name : hashedFileNameOf(docId)
}

/** The hashed file name of `docId`: used when its plain name is too long or taken (see the module comment). */
export function hashedFileNameOf (docId: DocId): string {
  const hash = createHash('sha256').update(docId).digest('hex').slice(0, 32)
  // Cut short at a whole escape, for a name people can still read.
  const start = encodeURIComponent(docId).slice(0, 120).replace(/%[0-9A-F]?$/, '')
  return `${start}!${hash}${SUFFIX}`
}

/** The document id a plain file name stands for; null for a hashed name or a name that is not a document's. */
export function docIdOfFileName (name: string): DocId | null {
  if (!name.endsWith(SUFFIX) || name.includes('!')) return null
  try {
    return parseDocId(decodeURIComponent(name.slice(0, -SUFFIX.length)))
  } catch {
    return null
  }
}

/** Whether `name` can be a document file of an export directory: no path, nothing hidden. */
export function isDocumentFileName (name: string): boolean {
  return name.endsWith(SUFFIX) && !name.startsWith('.') && !/[/\\\0]/.test(name)
}

/** Why a file of an export directory that is a symbolic link is not read. */
const SYMBOLIC_LINK = 'it is a symbolic link: only files inside the export directory are read'

/**
 * Opening flags: never follow a symbolic link (should one replace the file after it was
 * checked), and do not wait on a FIFO for a writer (it is then refused as not a regular
 * file). Windows has neither; the check before opening still refuses a link there.
 */
const OPEN_FLAGS = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0)

/**
 * The bytes of the file `name` of the export directory `dir`. Throws, saying why, if it
 * is a symbolic link or not a regular file (nothing is read through it), or cannot be read.
 */
export function readExportFile (dir: string, name: string): Buffer {
  const path = join(dir, name)
  if (lstatSync(path).isSymbolicLink()) throw new Error(SYMBOLIC_LINK)
  let fd: number
  try {
    fd = openSync(path, OPEN_FLAGS)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ELOOP') throw new Error(SYMBOLIC_LINK)
    throw error
  }
  try {
    if (!fstatSync(fd).isFile()) throw new Error('it is not a regular file')
    return readFileSync(fd)
  } finally {
    closeSync(fd)
  }
}

/** Reads `dir`'s manifest, or returns null if it has none; throws a {@link ToolError} if it is not one. */
export function readManifest (dir: string): Manifest | null {
  const path = join(dir, MANIFEST_FILE)
  let text: string
  try {
    text = readExportFile(dir, MANIFEST_FILE).toString('utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw new ToolError(`cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`)
  }
  let manifest: Partial<Manifest>
  try {
    manifest = JSON.parse(text) as Partial<Manifest>
  } catch (error) {
    throw new ToolError(`${path} is not JSON: ${(error as Error).message}`)
  }
  if (manifest.format !== EXPORT_FORMAT || manifest.version !== 1 || !Array.isArray(manifest.documents)) {
    throw new ToolError(`${path} is not a PetalDB export manifest (format "${EXPORT_FORMAT}", version 1)`)
  }
  return manifest as Manifest
}
