/**
 * Yjs transactions encoded as one update, the way Yjs's own `update` event encodes one
 * transaction (V1: the structs it added, then its deletions), but for any number of them
 * at once. The structs are read from the document's store when the batch is encoded, so
 * each is encoded once, in its final (merged, garbage-collected) form; deletions are kept
 * as the transactions' delete sets and merged once. A replica stores and sends one such
 * update per turn of the event loop instead of one per transaction, and the document
 * needs no `update` listener (which makes Yjs encode every transaction), nor
 * `Y.mergeUpdates` (which costs more than the edits themselves).
 */
import * as encoding from 'lib0/encoding'
import * as Y from 'yjs'

type DeleteSet = Y.Transaction['deleteSet']

/** Transactions of one Y.Doc gathered into one update; see the module comment. */
export class TransactionBatch {
  /** Transactions added that changed the document. */
  count = 0
  /** Per client, the first clock the batch holds. */
  private readonly from = new Map<number, number>()
  private readonly deleteSets: DeleteSet[] = []

  /** The update of one transaction, or null if it changed nothing (as Yjs's `update` event). */
  static encode (transaction: Y.Transaction): Uint8Array | null {
    const batch = new TransactionBatch()
    return batch.add(transaction) ? batch.encode(transaction.doc) : null
  }

  /**
   * Adds a transaction, once Yjs has cleaned it up (`afterTransactionCleanup`); returns
   * whether it changed anything (transactions that did not are left out and not counted).
   */
  add (transaction: Y.Transaction): boolean {
    let changed = false
    transaction.afterState.forEach((clock, client) => {
      const before = transaction.beforeState.get(client) ?? 0
      if (clock === before) return
      changed = true
      const from = this.from.get(client)
      if (from === undefined || before < from) this.from.set(client, before)
    })
    if (transaction.deleteSet.clients.size > 0) {
      changed = true
      this.deleteSets.push(transaction.deleteSet)
    }
    if (changed) this.count++
    return changed
  }

  /** The update holding everything the added transactions changed in `doc`. */
  encode (doc: Y.Doc): Uint8Array {
    const encoder = new Y.UpdateEncoderV1()
    const rest = encoder.restEncoder
    // Clients with higher ids first, as Yjs writes them.
    const clients = [...this.from].sort((a, b) => b[0] - a[0])
    encoding.writeVarUint(rest, clients.length)
    for (const [client, fromClock] of clients) {
      const structs = doc.store.clients.get(client)!
      const clock = Math.max(fromClock, structs[0]!.id.clock)
      const start = Y.findIndexSS(structs, clock)
      encoding.writeVarUint(rest, structs.length - start)
      encoder.writeClient(client)
      encoding.writeVarUint(rest, clock)
      structs[start]!.write(encoder, clock - structs[start]!.id.clock)
      for (let i = start + 1; i < structs.length; i++) structs[i]!.write(encoder, 0)
    }
    const deleteSet = this.deleteSets.length === 1 ? this.deleteSets[0]! : Y.mergeDeleteSets(this.deleteSets)
    const deletions = [...deleteSet.clients].sort((a, b) => b[0] - a[0])
    encoding.writeVarUint(rest, deletions.length)
    for (const [client, ranges] of deletions) {
      encoder.resetDsCurVal()
      encoding.writeVarUint(rest, client)
      encoding.writeVarUint(rest, ranges.length)
      for (const range of ranges) {
        encoder.writeDsClock(range.clock)
        encoder.writeDsLen(range.len)
      }
    }
    return encoder.toUint8Array()
  }
}
