/**
 * The relay's set of loaded documents. A document is loaded once however many
 * connections ask for it at the same time, stays in memory while anyone holds it, and is
 * evicted after it has been idle for `idleMs` (its state stays in the store). A failed
 * load is forgotten, so the next opener tries again; nothing is stored for it.
 */
import type { DocId } from '../shared/doc-id.js'
import { RelayDocument, type RelayDocumentOptions } from './relay-document.js'

interface Entry {
  loading: Promise<RelayDocument>
  doc: RelayDocument | null
  holders: number
  idleTimer: ReturnType<typeof setTimeout> | null
}

/** Options of {@link DocumentRegistry}. */
export interface RegistryOptions extends RelayDocumentOptions {
  /** Milliseconds a document with no connection stays in memory. */
  idleMs: number
}

/** Loads, shares and evicts {@link RelayDocument}s; see the module comment. */
export class DocumentRegistry {
  private readonly entries = new Map<DocId, Entry>()

  constructor (private readonly options: RegistryOptions) {}

  /** Number of documents in memory (loaded or loading). */
  get size (): number {
    return this.entries.size
  }

  /** Whether `docId` is in memory. */
  has (docId: DocId): boolean {
    return this.entries.has(docId)
  }

  /**
   * Loads `docId` (or joins a load in progress) and holds it in memory until
   * {@link release} is called once for this acquisition.
   */
  acquire (docId: DocId): Promise<RelayDocument> {
    let entry = this.entries.get(docId)
    if (entry === undefined) {
      entry = this.startLoad(docId)
    } else if (entry.idleTimer !== null) {
      clearTimeout(entry.idleTimer)
      entry.idleTimer = null
    }
    entry.holders++
    return entry.loading
  }

  /** Gives back one acquisition of `docId`; the last one starts the idle timer. */
  release (docId: DocId): void {
    const entry = this.entries.get(docId)
    if (entry === undefined) return
    entry.holders--
    this.scheduleEviction(docId, entry)
  }

  /** Evicts every document at once (on shutdown). */
  closeAll (): void {
    for (const [docId, entry] of this.entries) {
      if (entry.idleTimer !== null) clearTimeout(entry.idleTimer)
      entry.doc?.destroy()
      this.entries.delete(docId)
    }
  }

  private startLoad (docId: DocId): Entry {
    const entry: Entry = { loading: RelayDocument.load(docId, this.options), doc: null, holders: 0, idleTimer: null }
    this.entries.set(docId, entry)
    entry.loading.then(doc => {
      entry.doc = doc
      this.scheduleEviction(docId, entry)
    }, () => {
      if (this.entries.get(docId) === entry) this.entries.delete(docId)
    })
    return entry
  }

  private scheduleEviction (docId: DocId, entry: Entry): void {
    if (entry.holders > 0 || entry.doc === null || entry.idleTimer !== null) return
    entry.idleTimer = setTimeout(() => this.evict(docId, entry), this.options.idleMs)
    entry.idleTimer.unref?.()
  }

  private evict (docId: DocId, entry: Entry): void {
    if (this.entries.get(docId) !== entry || entry.holders > 0) return
    this.entries.delete(docId)
    entry.doc?.destroy()
    this.options.log.debug({ doc: docId }, 'evicted idle document')
  }
}
