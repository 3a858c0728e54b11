/**
 * What a relay answers a peer's state vector with, without letting requests cost it a core.
 * A diff of the whole document against a state vector costs time in the document's size
 * (40 ms for 2 MB), and peers may ask as often as they like. So answers are kept per state
 * vector until the next write (reconnecting peers mostly ask the same), and diffing is
 * bounded across the relay: past its share of time per second, a peer gets the whole
 * document instead, which costs nothing to compute and is just as correct (Yjs applies what
 * it already has as a no-op); bytes sent are charged to the asker's connection.
 */

/** Milliseconds of diffing per second, across the relay, before peers get whole documents. */
export const DIFF_MS_PER_SECOND = 200

/** Distinct state vectors answered per document and kept until the next write. */
const KEPT_ANSWERS = 8

/** A relay's diffing time, shared by its documents: {@link DIFF_MS_PER_SECOND}, refilled continuously, holding one second's worth. */
export class DiffBudget {
  private left = DIFF_MS_PER_SECOND
  private refilled = Date.now()

  /** Whether there is diffing time left now. */
  allows (): boolean {
    const now = Date.now()
    this.left = Math.min(DIFF_MS_PER_SECOND, this.left + Math.max(0, now - this.refilled) / 1000 * DIFF_MS_PER_SECOND)
    this.refilled = now
    return this.left > 0
  }

  /** Charges `ms` of diffing. */
  spend (ms: number): void {
    this.left -= ms
  }
}

/** The answers of one document, until its next write. */
export class SyncAnswers {
  /** Null while there is none: most open documents are idle, and an empty Map still costs a table. */
  private answers: Map<string, Uint8Array> | null = null

  constructor (private readonly budget: DiffBudget) {}

  /**
   * The answer to `stateVector`: kept, or `compute()` if there is diffing time left (the
   * time it took is charged), or `whole()` if not.
   */
  answer (stateVector: Uint8Array, compute: () => Uint8Array, whole: () => Uint8Array): Uint8Array {
    const key = String.fromCharCode(...stateVector.subarray(0, 4096))
    const kept = this.answers?.get(key)
    if (kept !== undefined) return kept
    if (!this.budget.allows()) return whole()
    const started = performance.now()
    const answer = compute()
    this.budget.spend(performance.now() - started)
    if (stateVector.length > 4096) return answer
    this.answers ??= new Map()
    if (this.answers.size >= KEPT_ANSWERS) this.answers.delete(this.answers.keys().next().value!)
    this.answers.set(key, answer)
    return answer
  }

  /** The document changed: forget every answer. */
  clear (): void {
    this.answers = null
  }
}
