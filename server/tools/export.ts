/**
 * `petaldb export`: every document of a relay's database (or those under a prefix) as a
 * file holding the whole document as one Yjs v1 update, plus a manifest (export-files.ts).
 * It reads through a read-only connection, so the relay may be running; each document is
 * read in one transaction, as it stood at some moment of the export.
 *
 * Documents are loaded by the relay's own code (`StoredDocument.load`), which validates
 * every stored part; one that fails is reported and the export goes on without it.
 * Deleted documents (a tombstone only) and empty ones are skipped. The files are written
 * into a new directory next to `out`, renamed to `out` once complete.
 */
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { DocDeletedError } from '../../shared/errors.js'
import type { DocId } from '../../shared/wire/doc-id.js'
import { StoredDocument } from '../documents/stored-document.js'
import { relayDatabasePath } from '../data-dir.js'
import { EXPORT_FORMAT, MANIFEST_FILE, fileNameOf, hashedFileNameOf, type Manifest, type ManifestEntry } from './export-files.js'
import { ReadOnlyStore } from './read-only-store.js'
import { ToolError } from './tool-error.js'

/** What to export, and where. */
export interface ExportOptions {
  /** The relay's data directory. */
  dataDir: string
  /** The directory to create. */
  out: string
  /** Export only documents whose id starts with this. Default all. */
  prefix?: string
  /** Called once the documents to go through are counted. */
  onStart?: (total: number) => void
  /** Called after each document: the bytes written for it (0 if skipped). */
  onDocument?: (bytes: number) => void
  /** Called for a document that could not be exported. */
  onFailed?: (docId: DocId, reason: string) => void
}

/** What an export did. */
export interface ExportResult {
  exported: number
  bytes: number
  /** Tombstones of deleted documents, and documents with nothing stored. */
  skipped: number
  failed: number
}

/** A Yjs state vector that has nothing: what a peer with nothing asks for, so the answer is the whole document. */
const EMPTY_STATE_VECTOR = new Uint8Array([0])

/** Exports the relay database in `dataDir` into the new directory `out`; see the module comment. */
export async function exportDocuments ({ dataDir, out, prefix = '', onStart, onDocument, onFailed }: ExportOptions): Promise<ExportResult> {
  if (existsSync(out)) throw new ToolError(`${out} already exists: export writes a new directory`)
  const store = new ReadOnlyStore(relayDatabasePath(dataDir))
  const result: ExportResult = { exported: 0, bytes: 0, skipped: 0, failed: 0 }
  let partial: string | null = null
  try {
    const ids = await store.list(prefix)
    onStart?.(ids.length)
    mkdirSync(resolve(out, '..'), { recursive: true })
    partial = mkdtempSync(`${resolve(out)}.partial-`)
    const documents: ManifestEntry[] = []
    for (const id of ids) {
      const update = await wholeDocument(store, id).catch((error: unknown) => {
        result.failed++
        onFailed?.(id, (error as Error).message)
        return undefined
      })
      if (update === undefined) {
        onDocument?.(0)
        continue
      }
      if (update === null) {
        result.skipped++
        onDocument?.(0)
        continue
      }
      const file = writeDocumentFile(partial, id, update)
      documents.push({ id, file, bytes: update.length })
      result.exported++
      result.bytes += update.length
      onDocument?.(update.length)
    }
    const manifest: Manifest = { format: EXPORT_FORMAT, version: 1, exportedAt: new Date().toISOString(), prefix, documents }
    writeFileSync(join(partial, MANIFEST_FILE), JSON.stringify(manifest, null, 2) + '\n')
    renameSync(partial, out)
    partial = null
    return result
  } finally {
    await store.close()
    if (partial !== null) rmSync(partial, { recursive: true, force: true })
  }
}

/** `docId` as one update, loaded and validated as a relay loads it; null if it is deleted or empty. */
async function wholeDocument (store: ReadOnlyStore, docId: DocId): Promise<Uint8Array | null> {
  let doc: StoredDocument
  try {
    // No compaction: the store is read-only, and an export must not change what it reads.
    doc = await StoredDocument.load(store, docId, { compactMinBytes: Infinity })
  } catch (error) {
    if (error instanceof DocDeletedError) return null
    throw error
  }
  const { logBytes, snapshotBytes } = doc.sizes
  return logBytes + snapshotBytes === 0 ? null : doc.missingFor(EMPTY_STATE_VECTOR)
}

/** Writes `update` as `docId`'s file in `dir` and returns its name (hashed if the plain one is taken, see export-files.ts). */
function writeDocumentFile (dir: string, docId: DocId, update: Uint8Array): string {
  for (const name of [fileNameOf(docId), hashedFileNameOf(docId)]) {
    try {
      // 'wx' fails rather than overwrite: on a file system that ignores case, "A" and "a" would share a file.
      writeFileSync(join(dir, name), update, { flag: 'wx' })
      return name
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    }
  }
  throw new Error(`cannot name a file for ${docId} in ${dir}: both its names are taken`)
}
