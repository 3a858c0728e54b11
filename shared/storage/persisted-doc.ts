/**
 * Keeps a Y.Doc and its stored form in step: loads the document from a {@link DocStore}
 * and writes every later update to the store's log through a {@link DocLog}, whose
 * snapshots encode the Y.Doc.
 */
import { DocLoadError } from '../errors.js'
import * as Y from 'yjs'
import type { DocId } from '../wire/doc-id.js'
import { DocLog, type DocLogOptions } from './doc-log.js'
import type { DocStore } from './store.js'

/** Options of {@link PersistedDoc.load}. */
export interface PersistedDocOptions extends DocLogOptions {
  /** Transaction origin used when applying the stored state, so listeners can skip it. */
  origin?: unknown
}

/** A Y.Doc bound to its stored log; create one with {@link PersistedDoc.load}. */
export class PersistedDoc {
  private constructor (
    private readonly log: DocLog,
    readonly ydoc: Y.Doc,
    /** The store's metadata for the document as it was at load. */
    readonly loadedMeta: Uint8Array | null
  ) {}

  /**
   * Applies what `store` holds for `docId` to `ydoc` (which should be empty) and returns
   * the binding. Rejects with {@link DocLoadError} if the stored data does not decode.
   */
  static async load (store: DocStore, docId: DocId, ydoc: Y.Doc, options: PersistedDocOptions = {}): Promise<PersistedDoc> {
    const stored = await store.load(docId)
    const parts = stored === null ? [] : stored.snapshot === null ? stored.updates : [stored.snapshot, ...stored.updates]
    try {
      Y.transact(ydoc, () => {
        for (const part of parts) Y.applyUpdate(ydoc, part)
      }, options.origin ?? null)
    } catch (error) {
      throw new DocLoadError(`stored data of document ${docId} does not decode: ${(error as Error).message}`)
    }
    const log = new DocLog(store, docId, stored, { snapshot: () => Y.encodeStateAsUpdate(ydoc) }, options)
    await log.compactIfDue()
    return new PersistedDoc(log, ydoc, stored?.meta ?? null)
  }

  get docId (): DocId {
    return this.log.docId
  }

  /**
   * Appends `update` (already applied to the Y.Doc) to the log, compacting if the log has
   * outgrown the snapshot. Resolves once the update is durable.
   */
  write (update: Uint8Array): Promise<void> {
    return this.log.write(update)
  }

  /**
   * Resolves once every write made so far is durable (stores commit in order); rejects,
   * from then on, once any write has failed.
   */
  settled (): Promise<void> {
    return this.log.settled()
  }

  /** Whether no write is in flight. */
  get idle (): boolean {
    return this.log.idle
  }

  /** Bytes currently in the log and in the snapshot. */
  get sizes (): { logBytes: number, snapshotBytes: number } {
    return this.log.sizes
  }
}
