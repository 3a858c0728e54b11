/**
 * Erasure of deleted documents from the store's files, and the record of what may not be
 * erased yet. A tombstone is written marked `erasePending` in the same commit as the
 * deletion, and the mark is cleared once the store has erased (for SQLite: the write-ahead
 * log folded back and emptied). A relay killed in between, or whose erasure a reader held
 * off, thus knows what to finish: at its next start, and on a repeated DELETE.
 */
import type { Logger } from 'pino'
import type { DocStore } from '../../shared/storage/store.js'
import type { DocId } from '../../shared/wire/doc-id.js'
import { nextTurn } from '../../shared/turn.js'
import { decodeDocMeta, encodeDocMeta } from './doc-meta.js'
import { listTombstones } from './tombstones.js'

/** See the module comment. */
export class Erasure {
  /** The erasure the requests of this turn share, not started yet. */
  private next: Promise<boolean> | null = null

  constructor (private readonly store: DocStore, private readonly logger: Logger) {}

  /** Whether the store erases at all; only then is a tombstone marked pending. */
  get erases (): boolean {
    return this.store.erase !== undefined
  }

  /**
   * Erases what was deleted so far (call once the deletions have committed) and clears
   * the pending marks of `docIds`. Resolves whether it erased; if not, the marks stay.
   */
  async complete (docIds: DocId[]): Promise<boolean> {
    if (!this.erases) return true
    const erased = await this.erase()
    if (erased) await Promise.all(docIds.map(docId => this.store.updateMeta(docId, withoutPendingMark)))
    return erased
  }

  /** At startup: finishes the erasure of every tombstone still marked pending. */
  async resume (): Promise<void> {
    if (!this.erases) return
    const pending = (await listTombstones(this.store)).filter(tombstone => tombstone.erasePending).map(tombstone => tombstone.docId)
    if (pending.length === 0) return
    const erased = await this.complete(pending)
    this.logger.info({ documents: pending.length, erased }, erased ? 'finished erasing deleted documents' : 'could not erase deleted documents yet (a reader holds the database); retrying')
  }

  /**
   * One store erasure for every request made before it starts. It starts on the next turn,
   * and a request made after it started waits for the next one: its deletion may have
   * committed after the erasure began.
   */
  private erase (): Promise<boolean> {
    this.next ??= new Promise<void>(resolve => nextTurn(resolve)).then(() => {
      this.next = null
      return this.store.erase!()
    })
    return this.next
  }
}

/** A tombstone's metadata without its pending mark (anything else unchanged). */
function withoutPendingMark (current: Uint8Array | null): Uint8Array | null {
  const meta = decodeDocMeta(current)
  if (meta?.erasePending === undefined) return current
  const { erasePending: _done, ...rest } = meta
  return encodeDocMeta(rest)
}
