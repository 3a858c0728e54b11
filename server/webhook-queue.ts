/**
 * The deliveries waiting for one webhook receiver. A relay may see thousands of documents
 * change in a few seconds (one client writing to a prefix can do it); calling for each at
 * once would open as many connections, each holding a file descriptor for as long as the
 * receiver takes, until the relay cannot accept its own clients. So calls to a receiver go
 * through this queue:
 *
 * - at most `concurrency` calls are in flight, so at most that many connections are open;
 * - a document is queued once: a change while it waits only moves its `updatedAt` forward,
 *   and a change while its call is in flight queues one more call (sent after that one, so
 *   the receiver hears of a document's changes in order);
 * - a failed call waits in the queue for its retry (no connection is held meanwhile) and is
 *   dropped if a later call for the same document is already queued, which supersedes it;
 * - the queue holds at most `maxQueued` documents; beyond that, changes to further documents
 *   are dropped and logged (the receiver does not hear of them).
 */
import type { Logger } from 'pino'

/** Settings of a {@link DeliveryQueue}. */
export interface DeliveryQueueOptions {
  /** Calls in flight at once. */
  concurrency: number
  /** Documents queued at most (retries included; calls in flight not). */
  maxQueued: number
  /** Attempts per call before it is given up (and logged). */
  attempts: number
  /** First retry delay; doubled per failure up to a minute. */
  retryBaseMs: number
  /** Makes one call: resolves with null once the receiver took it, else with why it failed. */
  send: (docId: string, updatedAt: number) => Promise<string | null>
  /** Logs with the receiver's URL attached. */
  logger: Logger
}

const MAX_RETRY_MS = 60_000

/** A call waiting to be made. */
interface Entry {
  /** The time of the latest change it reports. */
  updatedAt: number
  /** Failed attempts at it so far. */
  failures: number
  /** Not sent before this time (a retry's backoff). */
  notBefore: number
}

/** See the module comment. */
export class DeliveryQueue {
  /** Calls due now, in the order they became due (a Map iterates in insertion order). */
  private readonly ready = new Map<string, Entry>()
  /**
   * Retries waiting for their backoff, moved to `ready` by one timer; by delay, so that each
   * list is in the order its entries become due (and the timer looks only at their heads).
   */
  private readonly held = new Map<number, Map<string, Entry>>()
  /** Documents with a call in flight. */
  private readonly inFlight = new Set<string>()
  private wake: { timer: ReturnType<typeof setTimeout>, at: number } | null = null
  /** Documents dropped since the queue last had room (logged when it has room again). */
  private dropped = 0
  /** Whether the last call failed (the receiver's trouble and recovery are logged once each). */
  private failing = false
  private closed = false

  constructor (private readonly options: DeliveryQueueOptions) {}

  /** Calls queued (retries waiting included) and in flight. */
  get size (): { queued: number, inFlight: number } {
    return { queued: this.queued(), inFlight: this.inFlight.size }
  }

  /** `docId` changed at `updatedAt`: queues a call, or moves the queued call's time forward. */
  add (docId: string, updatedAt: number): void {
    if (this.closed) return
    const queued = this.queuedEntry(docId)
    if (queued !== undefined) {
      queued.updatedAt = Math.max(queued.updatedAt, updatedAt)
      queued.failures = 0 // a new change gets all its attempts; a held retry still waits out its backoff
      return
    }
    if (this.queued() >= this.options.maxQueued) {
      if (this.dropped++ === 0) {
        this.options.logger.error({ docId, maxQueued: this.options.maxQueued }, 'webhook queue full: the receiver will not hear of changes to further documents until it catches up')
      }
      return
    }
    if (this.dropped > 0) {
      this.options.logger.error({ dropped: this.dropped }, 'webhook queue has room again; the receiver did not hear of changes to these documents')
      this.dropped = 0
    }
    this.ready.set(docId, { updatedAt, failures: 0, notBefore: 0 })
    this.pump()
  }

  /** Stops: queued calls and retries are dropped; calls in flight end on their own. */
  close (): void {
    this.closed = true
    if (this.wake !== null) clearTimeout(this.wake.timer)
    this.wake = null
    this.ready.clear()
    this.held.clear()
  }

  /** Starts calls while there is room in the pool. */
  private pump (): void {
    while (!this.closed && this.inFlight.size < this.options.concurrency) {
      let next: [string, Entry] | undefined
      // At most one entry per document in flight is skipped: it waits for that call to end.
      for (const candidate of this.ready) {
        if (!this.inFlight.has(candidate[0])) {
          next = candidate
          break
        }
      }
      if (next === undefined) return
      const [docId, entry] = next
      this.ready.delete(docId)
      this.inFlight.add(docId)
      void this.call(docId, entry)
    }
  }

  private async call (docId: string, entry: Entry): Promise<void> {
    let failure: string | null
    try {
      failure = await this.options.send(docId, entry.updatedAt)
    } catch (error) {
      failure = (error as Error).message
    }
    this.inFlight.delete(docId)
    if (this.closed) return
    if (failure === null) {
      if (this.failing) this.options.logger.warn('webhook receiver answering again')
      this.failing = false
    } else {
      this.failed(docId, entry, failure)
    }
    this.pump()
  }

  private failed (docId: string, entry: Entry, failure: string): void {
    if (!this.failing) this.options.logger.warn({ docId, failure }, `webhook call failed (${failure}); retrying with backoff`)
    this.failing = true
    // A later change is queued already: its call reports a later time, and supersedes this one.
    if (this.queuedEntry(docId) !== undefined) return
    entry.failures++
    const { attempts, retryBaseMs } = this.options
    if (entry.failures >= attempts) {
      this.options.logger.error({ docId, updatedAt: new Date(entry.updatedAt).toISOString(), attempts }, `webhook failed ${attempts} times (${failure}); giving up on this call`)
      return
    }
    const delay = Math.min(MAX_RETRY_MS, retryBaseMs * 2 ** (entry.failures - 1))
    this.options.logger.debug({ docId, failures: entry.failures, retryInMs: delay }, `webhook ${failure}; retrying`)
    entry.notBefore = Date.now() + delay
    let list = this.held.get(delay)
    if (list === undefined) this.held.set(delay, list = new Map())
    list.set(docId, entry)
    this.wakeBy(entry.notBefore)
  }

  /** Makes sure the timer fires by `at`. */
  private wakeBy (at: number): void {
    if (this.wake !== null && this.wake.at <= at) return
    if (this.wake !== null) clearTimeout(this.wake.timer)
    const timer = setTimeout(() => this.release(), Math.max(0, at - Date.now()))
    timer.unref?.()
    this.wake = { timer, at }
  }

  /** Moves the retries that are due to the end of `ready`, and sets the timer for the next. */
  private release (): void {
    this.wake = null
    const now = Date.now()
    let next = Infinity
    for (const list of this.held.values()) {
      for (const [docId, entry] of list) {
        if (entry.notBefore > now) {
          next = Math.min(next, entry.notBefore)
          break
        }
        list.delete(docId)
        this.ready.set(docId, entry)
      }
    }
    if (next !== Infinity) this.wakeBy(next)
    this.pump()
  }

  /** The call queued for `docId` (due, or a retry waiting), if any. */
  private queuedEntry (docId: string): Entry | undefined {
    const ready = this.ready.get(docId)
    if (ready !== undefined) return ready
    for (const list of this.held.values()) {
      const held = list.get(docId)
      if (held !== undefined) return held
    }
    return undefined
  }

  private queued (): number {
    let count = this.ready.size
    for (const list of this.held.values()) count += list.size
    return count
  }
}
