/**
 * The relay's set of loaded documents. A document is loaded once however many
 * connections ask for it at the same time, stays in memory while anyone holds it, and is
 * evicted once nobody has held it or written to it for `idleMs` (its state stays in the store). A failed
 * load is forgotten, so the next opener tries again; nothing is stored for it. A document
 * that failed to store an update is reloaded from the store; one whose relay lost its claim
 * on it (relays on one database) is dropped. In a cluster a load waits at a gate until the
 * relay knows whether the document was deleted elsewhere.
 */
import { DocDeletedError } from '../../shared/errors.js'
import type { DocStore } from '../../shared/storage/store.js'
import { decodeDocMeta, encodeDocMeta } from './doc-meta.js'
import { DiffBudget } from './sync-answers.js'
import type { DocId } from '../../shared/wire/doc-id.js'
import { DocLoadError, FencedError, PetalError } from '../../shared/errors.js'
import { RelayDocument, type RelayDocumentOptions } from './relay-document.js'
import type { Served } from '../../shared/sync/connection.js'
import { Erasure } from './erasure.js'

interface Entry {
  loading: Promise<RelayDocument>
  /** Whether the load has yet to pass the gate, and so to read the store. */
  beforeGate: boolean
  doc: RelayDocument | null
  holders: number
  idleTimer: ReturnType<typeof setTimeout> | null
}

/**
 * Whether the relay may serve a document now: in a cluster, only once it has heard from the
 * other relays whether it was deleted (see `cluster/tombstone-gate.ts`).
 */
export interface ServeGate {
  /** Whether `docId` may be served now. */
  ready(docId: DocId): boolean
  /** Resolves once `docId` may be served; rejects (a DocLoadError, 4503) if that does not come in time. */
  whenReady(docId: DocId): Promise<void>
}

/** Options of {@link DocumentRegistry}. */
export interface RegistryOptions extends RelayDocumentOptions {
  /** Milliseconds a document with no connection stays in memory. */
  idleMs: number
  /** Called when a document has loaded. */
  onLoad?: (doc: RelayDocument) => void
  /** Called when a document is evicted (or the registry closes). */
  onEvict?: (doc: RelayDocument) => void
  /**
   * Awaited before each load of a document: rejects to refuse it (the error goes to its
   * openers). Relays on one database claim the document here.
   */
  claim?: (docId: DocId) => Promise<void>
  /** Awaited before each load of a document, after its claim; a loaded document that is no longer ready is dropped and loaded again. */
  gate?: ServeGate
  /** Called once a deletion is durable, with when the document was deleted. */
  onDelete?: (docId: DocId, deletedAt: number) => void
}

/** Loads, shares and evicts {@link RelayDocument}s; see the module comment. */
export class DocumentRegistry {
  private readonly entries = new Map<DocId, Entry>()

  private readonly options: RegistryOptions
  private readonly erasure: Erasure

  constructor (options: RegistryOptions) {
    this.options = {
      diffBudget: new DiffBudget(),
      ...options,
      onStoreFailed: (doc, error) => this.storeFailed(doc, error)
    }
    this.erasure = new Erasure(options.store, options.logger)
  }

  /** Number of documents in memory (loaded or loading). */
  get size (): number {
    return this.entries.size
  }

  /** Ids of the documents in memory (loaded or loading). */
  get docIds (): DocId[] {
    return [...this.entries.keys()]
  }

  /** Whether `docId` is in memory. */
  has (docId: DocId): boolean {
    return this.entries.has(docId)
  }

  /** The loaded document `docId`, if it is in memory and loaded; does not hold it. */
  peek (docId: DocId): RelayDocument | null {
    return this.entries.get(docId)?.doc ?? null
  }

  /** Runs `task` with `docId` held in memory, releasing it afterwards. */
  async with<T> (docId: DocId, task: (doc: RelayDocument) => T | Promise<T>): Promise<T> {
    // A failed load forgets its entry, holders and all: nothing to release then.
    const doc = await this.acquire(docId)
    try {
      return await task(doc)
    } finally {
      this.release(docId)
    }
  }

  /**
   * Loads `docId` (or joins a load in progress) and holds it in memory until
   * {@link release} is called once for this acquisition. If the load fails the promise
   * rejects and the acquisition is void: do not release it.
   */
  acquire (docId: DocId): Promise<RelayDocument> {
    const loaded = this.entries.get(docId)?.doc ?? null
    if (loaded?.isDeleted === true) return Promise.reject(new DocDeletedError(docId))
    // Loaded before the relay was cut off from the others: served again only once it has heard them.
    if (loaded !== null && this.options.gate?.ready(docId) === false) this.drop(docId, new DocLoadError(`${docId} is checked again for a deletion; try again`))
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

  /** {@link acquire}s `docId` for a session, which gives it back by calling `release()` once. */
  hold (docId: DocId): Served & { readonly host: Promise<RelayDocument> } {
    return new Hold(this, docId, this.acquire(docId))
  }

  /** Gives back one acquisition of `docId`; the last one starts the idle timer. */
  release (docId: DocId): void {
    const entry = this.entries.get(docId)
    if (entry === undefined) return
    entry.holders--
    this.scheduleEviction(docId, entry)
  }

  /** Evicts `docId` now if nobody holds it; returns whether it is out of memory. */
  evictIfIdle (docId: DocId): boolean {
    const entry = this.entries.get(docId)
    if (entry === undefined) return true
    if (entry.holders > 0 || entry.doc === null) return false
    if (entry.idleTimer !== null) clearTimeout(entry.idleTimer)
    this.evict(docId, entry)
    return true
  }

  /**
   * Stops serving `docId` now: every session fails with `error` (a MovedError redirects
   * native peers) and the document leaves memory; a load in progress is left to its claim,
   * which decides again. Returns whether it was loaded.
   */
  drop (docId: DocId, error: Error): boolean {
    const entry = this.entries.get(docId)
    if (entry?.doc == null) return false
    const doc = entry.doc
    doc.failSessions(error)
    // Sessions give their holds back as they fail; a hold that remains (a task) gets a fresh load.
    if (entry.holders > 0) {
      this.reload(docId, entry, doc)
      return true
    }
    if (entry.idleTimer !== null) clearTimeout(entry.idleTimer)
    this.entries.delete(docId)
    this.unload(doc)
    return true
  }

  /**
   * Deletes `docId` from this relay: its sessions end with 4410, what is stored is replaced
   * by a tombstone (it stays deleted, see doc-meta.ts), and erased from the store's files
   * where the store can. Resolves once that is durable, with whether there was a document.
   * Deleting a deleted document changes nothing but finishes its erasure (an earlier
   * deletion may have been cut short), and resolves false.
   */
  async delete (docId: DocId, deletedAt = Date.now()): Promise<boolean> {
    const { store } = this.options
    const doc = await this.loadedOrNone(docId)
    let existed = doc !== null && !doc.isDeleted && !doc.isEmpty
    doc?.markDeleted()
    if (doc === null) {
      const stat = await this.stat(docId)
      existed = stat !== null && stat.bytes > 0
      if (stat?.deleted === true) {
        await this.erasure.complete([docId])
        return false
      }
    }
    // Marked pending in the same commit: a relay killed before the erasure finishes it at its next start.
    const tombstone = encodeDocMeta({ updatedAt: Date.now(), deletedAt, ...(this.erasure.erases ? { erasePending: true } : {}) })
    await Promise.all([store.delete(docId), store.updateMeta(docId, () => tombstone)])
    // A load that read the store before the tombstone was written holds the content: it is deleted too.
    ;(await this.loadedOrNone(docId))?.markDeleted()
    await this.erasure.complete([docId])
    this.options.onDelete?.(docId, deletedAt)
    return existed
  }

  /**
   * `docId` as loaded (once a load in progress ends), or null. A load still waiting at the
   * gate is not waited for: it reads the store later, and the gate may be waiting for the
   * very deletion that asks.
   */
  private async loadedOrNone (docId: DocId): Promise<RelayDocument | null> {
    const entry = this.entries.get(docId)
    if (entry === undefined || entry.beforeGate) return null
    return await entry.loading.catch(() => null)
  }

  /** At startup: erases the content of documents whose deletion was cut short before its erasure finished. */
  resumeErasure (): Promise<void> {
    return this.erasure.resume()
  }

  /** What is stored for `docId`: its size, when it changed, and whether it was deleted; null if nothing is. */
  async stat (docId: DocId): Promise<{ bytes: number, updatedAt: number, deleted: boolean } | null> {
    const doc = this.peek(docId)
    if (doc !== null && !doc.isDeleted) return doc.isEmpty ? null : { ...doc.stats, deleted: false }
    const { store } = this.options
    const stored = store.stat !== undefined ? await store.stat(docId) : await loadedStat(store, docId)
    if (stored === null) return null
    const meta = decodeDocMeta(stored.meta)
    return { bytes: stored.bytes, updatedAt: meta?.updatedAt ?? 0, deleted: meta?.deletedAt !== undefined }
  }

  /** Evicts every document at once (on shutdown). */
  closeAll (): void {
    for (const [docId, entry] of this.entries) {
      if (entry.idleTimer !== null) clearTimeout(entry.idleTimer)
      this.entries.delete(docId)
      if (entry.doc !== null) this.unload(entry.doc)
    }
  }

  private startLoad (docId: DocId): Entry {
    const entry = { doc: null, holders: 0, idleTimer: null, beforeGate: false } as unknown as Entry // `loading` is set by load()
    this.entries.set(docId, entry)
    this.load(docId, entry)
    return entry
  }

  /** (Re)loads `docId` into `entry`, which its holders keep holding. */
  private load (docId: DocId, entry: Entry): void {
    const { claim, gate } = this.options
    const claimed = claim?.(docId) ?? Promise.resolve()
    entry.beforeGate = gate !== undefined
    const checked = gate === undefined
      ? claimed
      : claimed.then(() => gate.ready(docId) ? undefined : gate.whenReady(docId)).finally(() => { if (entry.loading === loading) entry.beforeGate = false })
    const loading = checked.then(() => RelayDocument.load(docId, this.options)).catch((error: unknown) => {
      // Openers are told why with a code: what carries none (a database that is away, say) means "try again later".
      throw error instanceof PetalError ? error : new DocLoadError(`${docId} could not be loaded: ${(error as Error).message}`)
    })
    entry.loading = loading
    loading.then(doc => {
      if (entry.loading !== loading) return doc.destroy()
      entry.doc = doc
      this.options.onLoad?.(doc)
      this.scheduleEviction(docId, entry)
    }, () => {
      if (this.entries.get(docId) === entry && entry.loading === loading) this.entries.delete(docId)
    })
  }

  /**
   * A document that could not store an update serves what is stored, not what it held; one
   * whose claim was lost is served by another relay now.
   */
  private storeFailed (doc: RelayDocument, error: unknown): void {
    if (error instanceof FencedError) {
      this.drop(doc.docId, error)
      return
    }
    const entry = this.entries.get(doc.docId)
    if (entry !== undefined) this.reload(doc.docId, entry, doc)
  }

  private reload (docId: DocId, entry: Entry, failed: RelayDocument): void {
    if (this.entries.get(docId) !== entry || entry.doc !== failed) return
    entry.doc = null
    this.unload(failed)
    this.load(docId, entry)
  }

  private scheduleEviction (docId: DocId, entry: Entry): void {
    if (entry.holders > 0 || entry.doc === null || entry.idleTimer !== null) return
    entry.idleTimer = setTimeout(() => this.evict(docId, entry), this.options.idleMs)
    entry.idleTimer.unref?.()
  }

  private evict (docId: DocId, entry: Entry): void {
    if (this.entries.get(docId) !== entry || entry.holders > 0) return
    // Updates from other relays hold no document, but keep it in memory while they flow.
    const quietFor = entry.doc?.idleFor ?? this.options.idleMs
    if (quietFor < this.options.idleMs) {
      entry.idleTimer = setTimeout(() => this.evict(docId, entry), this.options.idleMs - quietFor)
      entry.idleTimer.unref?.()
      return
    }
    this.entries.delete(docId)
    if (entry.doc !== null) this.unload(entry.doc)
    this.options.logger.debug({ doc: docId }, 'evicted idle document')
  }

  private unload (doc: RelayDocument): void {
    this.options.onEvict?.(doc)
    doc.destroy()
  }
}

/** One acquisition, as a session holds it (an object, not a closure, for each of thousands of sessions). */
class Hold implements Served {
  constructor (private readonly registry: DocumentRegistry, private readonly docId: DocId, readonly host: Promise<RelayDocument>) {}

  release (): void {
    this.registry.release(this.docId)
  }
}

/** {@link DocStore.stat} for a store without it: from a full load. */
async function loadedStat (store: DocStore, docId: DocId): Promise<{ bytes: number, meta: Uint8Array | null } | null> {
  const stored = await store.load(docId)
  if (stored === null) return null
  const bytes = (stored.snapshot?.length ?? 0) + stored.updates.reduce((sum, update) => sum + update.length, 0)
  return { bytes, meta: stored.meta }
}
