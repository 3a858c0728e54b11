/**
 * Webhooks (`--webhook URL`): after a document changes, a POST of `{ "docId", "updatedAt" }`
 * to every URL, debounced per document (the first change starts a wait of `debounceMs`;
 * changes during it join the same call, and a stream of changes still calls at least every
 * ten waits), signed with HMAC-SHA256 of the body in `X-PetalDB-Signature: sha256=<hex>`,
 * retried with exponential backoff when the receiver fails or cannot be reached. Nothing
 * here runs on the write path: a change only notes the document, and deliveries run on
 * their own, so a slow or dead receiver never slows writes.
 */
import { createHmac } from 'node:crypto'
import type { Logger } from 'pino'

/** Options of {@link Webhooks}. */
export interface WebhookOptions {
  /** Where to POST. */
  urls: string[]
  /** HMAC-SHA256 key of the signature. */
  secret: string
  /** Wait after a change before calling. Default 1000 ms. */
  debounceMs?: number
  /** First retry delay; doubled per failure up to a minute. Default 1000 ms. */
  retryBaseMs?: number
  /** Attempts per call before it is given up (and logged). Default 10. */
  attempts?: number
  log: Logger
}

/** How long one call may take before it counts as failed. */
const CALL_TIMEOUT_MS = 10_000
const MAX_RETRY_MS = 60_000

interface Waiting {
  timer: ReturnType<typeof setTimeout>
  firstAt: number
  updatedAt: number
}

/** See the module comment. */
export class Webhooks {
  private readonly waiting = new Map<string, Waiting>()
  private readonly retries = new Set<ReturnType<typeof setTimeout>>()
  private closed = false
  private readonly debounceMs: number

  constructor (private readonly options: WebhookOptions) {
    if (options.secret === '') throw new Error('webhooks need a signing secret')
    this.debounceMs = options.debounceMs ?? 1000
  }

  /** `docId` changed now. */
  changed (docId: string): void {
    if (this.closed) return
    const now = Date.now()
    const waiting = this.waiting.get(docId)
    if (waiting !== undefined) {
      waiting.updatedAt = now
      return
    }
    const entry: Waiting = { firstAt: now, updatedAt: now, timer: setTimeout(() => this.due(docId), this.debounceMs) }
    entry.timer.unref?.()
    this.waiting.set(docId, entry)
  }

  /** Stops calling: changes still waiting are not sent, retries are dropped. */
  close (): void {
    this.closed = true
    for (const { timer } of this.waiting.values()) clearTimeout(timer)
    for (const timer of this.retries) clearTimeout(timer)
    this.waiting.clear()
    this.retries.clear()
  }

  private due (docId: string): void {
    const entry = this.waiting.get(docId)!
    // Changes kept coming during the wait: wait again, unless the document has waited ten times already.
    const quietFor = Date.now() - entry.updatedAt
    if (quietFor < this.debounceMs && Date.now() - entry.firstAt < 10 * this.debounceMs) {
      entry.timer = setTimeout(() => this.due(docId), this.debounceMs - quietFor)
      entry.timer.unref?.()
      return
    }
    this.waiting.delete(docId)
    const body = JSON.stringify({ docId, updatedAt: new Date(entry.updatedAt).toISOString() })
    for (const url of this.options.urls) void this.deliver(url, body, 1)
  }

  private async deliver (url: string, body: string, attempt: number): Promise<void> {
    if (this.closed) return
    const signature = `sha256=${createHmac('sha256', this.options.secret).update(body).digest('hex')}`
    let failure: string
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-petaldb-signature': signature },
        body,
        signal: AbortSignal.timeout(CALL_TIMEOUT_MS)
      })
      await response.body?.cancel()
      if (response.ok) return
      failure = `answered ${response.status}`
    } catch (error) {
      failure = (error as Error).message
    }
    const attempts = this.options.attempts ?? 10
    if (attempt >= attempts) {
      this.options.log.error({ url, body, attempts }, `webhook failed ${attempts} times (${failure}); giving up on this call`)
      return
    }
    const delay = Math.min(MAX_RETRY_MS, (this.options.retryBaseMs ?? 1000) * 2 ** (attempt - 1))
    this.options.log.warn({ url, attempt, retryInMs: delay }, `webhook ${failure}; retrying`)
    const timer = setTimeout(() => {
      this.retries.delete(timer)
      void this.deliver(url, body, attempt + 1)
    }, delay)
    timer.unref?.()
    this.retries.add(timer)
  }
}
