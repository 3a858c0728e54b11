import type { DocId } from '../wire/doc-id.js'
import type { DocStore, StoredDoc } from './store.js'

/**
 * A {@link DocStore} in memory: for tests, and for replicas that need no persistence.
 * Everything is lost when the process ends. One instance is one writer: give each replica its own.
 */
export class MemoryStore implements DocStore {
  private readonly docs = new Map<DocId, StoredDoc>()

  async load (docId: DocId): Promise<StoredDoc | null> {
    const doc = this.docs.get(docId)
    return doc === undefined ? null : { ...doc, updates: [...doc.updates] }
  }

  async append (docId: DocId, update: Uint8Array): Promise<void> {
    this.entry(docId).updates.push(update)
  }

  async compact (docId: DocId, snapshot: Uint8Array): Promise<void> {
    const doc = this.entry(docId)
    doc.snapshot = snapshot
    doc.updates = []
  }

  async updateMeta (docId: DocId, update: (current: Uint8Array | null) => Uint8Array | null): Promise<void> {
    const doc = this.entry(docId)
    doc.meta = update(doc.meta)
  }

  async list (prefix = ''): Promise<DocId[]> {
    return [...this.docs.keys()].filter(id => id.startsWith(prefix)).sort()
  }

  async delete (docId: DocId): Promise<void> {
    this.docs.delete(docId)
  }

  async close (): Promise<void> {}

  private entry (docId: DocId): StoredDoc {
    let doc = this.docs.get(docId)
    if (doc === undefined) {
      doc = { snapshot: null, updates: [], meta: null }
      this.docs.set(docId, doc)
    }
    return doc
  }
}
