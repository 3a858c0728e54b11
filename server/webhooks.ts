/**
 * Webhooks (`--webhook URL`): after a document changes, a POST of `{ "docId", "updatedAt" }`
 * to every URL, debounced per document (the first change starts a wait of `debounceMs`;
 * changes during it join the same call, and a stream of changes still calls at least every
 * ten waits), signed with HMAC-SHA256 of the body in `X-PetalDB-Signature: sha256=<hex>`,
 * retried with exponential backoff when the receiver fails or cannot be reached. Nothing
 * here runs on the write path: a change only notes the document, and deliveries run on
 * their own, so a slow or dead receiver never slows writes. Calls to each URL go through a
 * {@link DeliveryQueue}: a few at a time, one queued call per document (see its module), on
 * an HTTP agent of that many kept-alive connections at most. A call succeeds when the
 * receiver answers 2xx; a redirect is not followed (it counts as a failure).
 */
import { createHmac } from 'node:crypto'
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http'
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https'
import type { Logger } from 'pino'
import { DeliveryQueue } from './webhook-queue.js'

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
  /** Calls in flight at once per URL, and connections open to it at most. Default {@link WEBHOOK_CONCURRENCY}. */
  concurrency?: number
  /** Documents waiting for a call per URL, at most; changes to more are dropped and logged. Default {@link WEBHOOK_MAX_QUEUED}. */
  maxQueued?: number
  /** How long one call may take before it counts as failed. Default 10 s. */
  timeoutMs?: number
  logger: Logger
}

/**
 * Calls in flight at once per URL by default: enough for a receiver that answers in tens of
 * milliseconds to hear of a hundred changes a second, few enough that a receiver that hangs
 * holds only that many of the relay's connections (and file descriptors).
 */
export const WEBHOOK_CONCURRENCY = 4

/**
 * Documents waiting for a call per URL by default. Coalescing keeps one entry per changed
 * document (about a hundred bytes), so this is reached only when a receiver stays down while
 * this many distinct documents change: a bound on the memory it can cost.
 */
export const WEBHOOK_MAX_QUEUED = 100_000

const CALL_TIMEOUT_MS = 10_000

interface Waiting {
  timer: ReturnType<typeof setTimeout>
  firstAt: number
  updatedAt: number
}

/** See the module comment. */
export class Webhooks {
  private readonly waiting = new Map<string, Waiting>()
  private readonly queues: DeliveryQueue[]
  private readonly agents: Array<HttpAgent | HttpsAgent>
  /** Aborts the calls in flight on close. */
  private readonly closing = new AbortController()
  private readonly debounceMs: number

  constructor (private readonly options: WebhookOptions) {
    if (options.secret === '') throw new Error('webhooks need a signing secret')
    this.debounceMs = options.debounceMs ?? 1000
    const concurrency = options.concurrency ?? WEBHOOK_CONCURRENCY
    // The queue keeps `concurrency` calls in flight; the agent's cap holds even while a
    // finished call's connection is being handed back, where fetch's pool would open another.
    this.agents = options.urls.map(url => new (url.startsWith('https:') ? HttpsAgent : HttpAgent)({ keepAlive: true, maxSockets: concurrency }))
    this.queues = options.urls.map((url, i) => new DeliveryQueue({
      concurrency,
      maxQueued: options.maxQueued ?? WEBHOOK_MAX_QUEUED,
      attempts: options.attempts ?? 10,
      retryBaseMs: options.retryBaseMs ?? 1000,
      send: (docId, updatedAt) => this.call(url, this.agents[i]!, docId, updatedAt),
      logger: options.logger.child({ webhook: url })
    }))
  }

  /** Calls waiting in the queues (retries included) and in flight, over all URLs. */
  get deliveries (): { queued: number, inFlight: number } {
    let queued = 0
    let inFlight = 0
    for (const queue of this.queues) {
      queued += queue.size.queued
      inFlight += queue.size.inFlight
    }
    return { queued, inFlight }
  }

  /** `docId` changed now. */
  changed (docId: string): void {
    if (this.closing.signal.aborted) return
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

  /** Stops calling: changes still waiting are not sent, retries are dropped, calls in flight aborted. */
  close (): void {
    this.closing.abort()
    for (const { timer } of this.waiting.values()) clearTimeout(timer)
    this.waiting.clear()
    for (const queue of this.queues) queue.close()
    for (const agent of this.agents) agent.destroy()
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
    for (const queue of this.queues) queue.add(docId, entry.updatedAt)
  }

  /** One signed POST; null once the receiver answered 2xx, else why not. */
  private async call (url: string, agent: HttpAgent | HttpsAgent, docId: string, updatedAt: number): Promise<string | null> {
    const body = JSON.stringify({ docId, updatedAt: new Date(updatedAt).toISOString() })
    const headers = {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      'x-petaldb-signature': `sha256=${createHmac('sha256', this.options.secret).update(body).digest('hex')}`
    }
    const timeoutMs = this.options.timeoutMs ?? CALL_TIMEOUT_MS
    const timeout = AbortSignal.timeout(timeoutMs)
    try {
      const status = await post(url, agent, headers, body, AbortSignal.any([this.closing.signal, timeout]))
      return status >= 200 && status < 300 ? null : `answered ${status}`
    } catch (error) {
      return timeout.aborted ? `no answer within ${timeoutMs} ms` : (error as Error).message
    }
  }
}

/** POSTs `body` to `url` through `agent`; resolves with the answer's status once its body was read. */
function post (url: string, agent: HttpAgent | HttpsAgent, headers: OutgoingHttpHeaders, body: string, signal: AbortSignal): Promise<number> {
  return new Promise((resolve, reject) => {
    const options = { method: 'POST', headers, signal }
    const request = url.startsWith('https:')
      ? httpsRequest(url, { ...options, agent: agent as HttpsAgent }, answered)
      : httpRequest(url, { ...options, agent }, answered)
    function answered (response: IncomingMessage): void {
      response.resume() // the body is dropped, and the connection is free for the next call once it was read
      response.on('close', () => response.complete ? resolve(response.statusCode ?? 0) : reject(new Error('the answer was cut short')))
    }
    request.on('error', reject)
    request.end(body)
  })
}
