/**
 * `petaldb import`: the files of an export directory applied to their documents, each as an
 * update (where to, see import-targets.ts). Applying merges: what a document already has is
 * kept, what the file adds is added, and importing the same files twice changes nothing.
 *
 * The documents are those the manifest lists; a directory without one (files gathered by
 * hand, `GET /v1/docs/<id>` saved under percent-encoded names) contributes every `.yjs`
 * file, its id decoded from its name. A file that cannot be read, that is a symbolic link
 * (never followed: it could lead anywhere on the machine, see export-files.ts) or that the
 * relay refuses is reported, and the import goes on with the rest.
 */
import { readdirSync } from 'node:fs'
import { docIdProblem, type DocId } from '../../shared/wire/doc-id.js'
import { docIdOfFileName, isDocumentFileName, readExportFile, readManifest, type ManifestEntry } from './export-files.js'
import type { ImportTarget } from './import-targets.js'
import { ToolError } from './tool-error.js'

/** What to import, and into what. */
export interface ImportOptions {
  /** The export directory. */
  from: string
  target: ImportTarget
  /** Called once the files to go through are counted. */
  onStart?: (total: number) => void
  /** Called after each file: its bytes if it was applied, 0 if it failed. */
  onDocument?: (bytes: number) => void
  /** Called for a file that was not applied. */
  onFailed?: (file: string, docId: string | null, reason: string) => void
}

/** What an import did. */
export interface ImportResult {
  imported: number
  bytes: number
  failed: number
}

/** A file to import, or why it cannot be. */
interface Item { file: string, docId: DocId | null, problem: string | null }

/** Files in flight at once: a relay commits updates that arrive together in one transaction. */
const CONCURRENCY = 4

/** Imports the directory `from` into `target` (which it closes); see the module comment. */
export async function importDocuments ({ from, target, onStart, onDocument, onFailed }: ImportOptions): Promise<ImportResult> {
  const result: ImportResult = { imported: 0, bytes: 0, failed: 0 }
  try {
    const items = itemsOf(from)
    onStart?.(items.length)
    let next = 0
    let aborted: ToolError | null = null
    const one = async (item: Item): Promise<void> => {
      try {
        if (item.problem !== null) throw new Error(item.problem)
        const update = readExportFile(from, item.file)
        await target.apply(item.docId!, update)
        result.imported++
        result.bytes += update.length
        onDocument?.(update.length)
      } catch (error) {
        // The run cannot go on (the relay cannot be reached): not this file's fault.
        if (error instanceof ToolError) {
          aborted ??= error
          return
        }
        result.failed++
        onFailed?.(item.file, item.docId, (error as Error).message)
        onDocument?.(0)
      }
    }
    const worker = async (): Promise<void> => {
      while (next < items.length && aborted === null) await one(items[next++]!)
    }
    // Every file in flight settles before the target closes, an aborted run too.
    await Promise.all(Array.from({ length: CONCURRENCY }, worker))
    if (aborted !== null) throw aborted
    return result
  } finally {
    await target.close()
  }
}

/** The files of `dir` to import, from its manifest or, without one, its `.yjs` files. */
function itemsOf (dir: string): Item[] {
  const manifest = readManifest(dir)
  if (manifest !== null) {
    return manifest.documents.map((entry): Item => {
      const { id, file } = (entry ?? {}) as Partial<ManifestEntry>
      const name = String(file)
      const problem = typeof id !== 'string' ? 'the manifest gives it no document id'
        : docIdProblem(id) ?? (isDocumentFileName(name) ? null : 'the manifest names a file outside the export directory')
      return { file: name, docId: problem === null ? id as DocId : null, problem }
    })
  }
  let names: string[]
  try {
    names = readdirSync(dir).filter(isDocumentFileName).sort()
  } catch (error) {
    throw new ToolError(`cannot read ${dir}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`)
  }
  return names.map(file => {
    const docId = docIdOfFileName(file)
    return { file, docId, problem: docId === null ? 'its name is not a percent-encoded document id (a hashed name needs the manifest)' : null }
  })
}
