/**
 * Per-connection and per-document limits of a relay, with their defaults. Exceeding one
 * closes the offending connection with a specific close code (1008 policy violation, 1009
 * too big, 1013 try again later), or refuses the HTTP request; other connections and
 * documents are unaffected.
 */
import { LimitError } from '../errors.js'
import { CloseCode } from '../wire/close-codes.js'

/** Relay limits; every field has a default (see {@link DEFAULT_LIMITS}). */
export interface Limits {
  /** Largest WebSocket frame, in bytes (1009). */
  maxFrameBytes: number
  /** Documents one native connection may have open (1008). */
  maxDocsPerConnection: number
  /** Simultaneous connections from one IP address (1013). */
  maxConnectionsPerIp: number
  /** Messages per second per connection, with bursts of one second's worth; a faster sender is slowed down, and cut off (1008) only when it gets 10 s ahead. */
  maxMessagesPerSecond: number
  /** Bytes per second per connection, received or sent in answer to its requests, as for messages (1008 when 10 s ahead). */
  maxBytesPerSecond: number
  /**
   * Stored size of one document (snapshot + log), in bytes (1009). A client gets the whole
   * document as one frame when it first syncs, so keep this under what clients accept: Node
   * `ws` clients refuse frames over 100 MiB by default.
   */
  maxDocumentBytes: number
  /** Bytes of updates of one document stored while some client's clocks have a gap, i.e. waiting for missing dependencies (1008). */
  maxWaitingBytes: number
  /** Distinct client ids in one document's structs and deletions (1008); a stored document with more is refused (4503). */
  maxClientsPerDocument: number
  /** Awareness entries per document (1008). */
  maxAwarenessEntries: number
  /** Bytes of one awareness state (1008). */
  maxAwarenessStateBytes: number
  /** Bytes queued for sending to one connection before it counts as a slow reader and is dropped. */
  maxBufferedBytes: number
  /**
   * Slowest pace of an HTTP request body, in bytes per second, counted over each request
   * timeout from the end of its headers: a body that brings less in one of them (and has not
   * ended) has its socket closed.
   */
  minBodyBytesPerSecond: number
  /** Bytes of HTTP request bodies held in memory at once from one address (HTTP 429 beyond). Keep it at least `maxFrameBytes`, the largest body. */
  maxBodyBytesPerIp: number
  /** Bytes of HTTP request bodies held in memory at once in all (HTTP 503 beyond). */
  maxBodyBytesTotal: number
}

/** The largest frame a Node `ws` client accepts by default (its `maxPayload`). */
export const WS_CLIENT_MAX_PAYLOAD = 100 * 1024 * 1024

export const DEFAULT_LIMITS: Limits = {
  maxFrameBytes: 16 * 1024 * 1024,
  maxDocsPerConnection: 1000,
  maxConnectionsPerIp: 200,
  maxMessagesPerSecond: 2000,
  maxBytesPerSecond: 32 * 1024 * 1024,
  maxDocumentBytes: 64 * 1024 * 1024,
  maxWaitingBytes: 4 * 1024 * 1024,
  maxClientsPerDocument: 100_000,
  maxAwarenessEntries: 1000,
  maxAwarenessStateBytes: 64 * 1024,
  maxBufferedBytes: 32 * 1024 * 1024,
  // 512 kbit/s: a 16 MiB body may take four minutes, a stalled one is cut within two request timeouts.
  minBodyBytesPerSecond: 64 * 1024,
  // Two of the largest bodies from one address, four in all: a relay on its own holds at most 64 MiB of bodies.
  maxBodyBytesPerIp: 32 * 1024 * 1024,
  maxBodyBytesTotal: 64 * 1024 * 1024
}

/**
 * Seconds of a connection's rate budget it may run ahead before it is cut off (1008). Up to
 * there it is slowed down instead: the relay stops reading its socket until the budget has
 * caught up, so a burst (a client replaying 5,000 transactions) only waits.
 */
export const RATE_DEBT_SECONDS = 10

/**
 * The rate budgets of one connection: token buckets of messages and of bytes, each refilling
 * at its limit per second and holding at most one second's worth, that may go into debt.
 * Received frames, and work done for the connection, are charged to them. Each bucket is
 * one number, the time at which it would be full again (the generic cell rate algorithm),
 * and the class is the base of the connection's link rather than an object of its own: a
 * relay keeps one per connection.
 */
export abstract class ConnectionRates {
  /** Milliseconds since the epoch at which each bucket would be full again (0: full). */
  private messagesFullAt = 0
  private bytesFullAt = 0

  protected abstract get rateLimits (): Pick<Limits, 'maxMessagesPerSecond' | 'maxBytesPerSecond'>

  /**
   * Charges one received frame. Returns how many seconds the connection is ahead of its
   * budget (0: within it), for the caller to stop reading that long; throws a
   * {@link LimitError} once it is more than {@link RATE_DEBT_SECONDS} ahead.
   */
  protected chargeFrame (frame: Uint8Array): number {
    const now = Date.now()
    const { maxMessagesPerSecond } = this.rateLimits
    this.messagesFullAt = Math.max(this.messagesFullAt, now) + 1000 / maxMessagesPerSecond
    const messageDebt = debtOf(this.messagesFullAt, now)
    if (messageDebt > RATE_DEBT_SECONDS) throw new LimitError(CloseCode.policyViolation, `far more than ${maxMessagesPerSecond} messages per second`)
    return Math.max(messageDebt, this.takeBytes(frame.length, now))
  }

  /** Charges bytes sent in answer to the connection's requests, as for {@link chargeFrame}. */
  protected chargeBytes (count: number): number {
    return this.takeBytes(count, Date.now())
  }

  private takeBytes (count: number, now: number): number {
    const { maxBytesPerSecond } = this.rateLimits
    this.bytesFullAt = Math.max(this.bytesFullAt, now) + count * 1000 / maxBytesPerSecond
    const debt = debtOf(this.bytesFullAt, now)
    if (debt > RATE_DEBT_SECONDS) throw new LimitError(CloseCode.policyViolation, `far more than ${maxBytesPerSecond} bytes per second`)
    return debt
  }
}

/** Seconds of debt at `now` of a bucket that is full again at `fullAt`: beyond the one second's worth it holds. */
const debtOf = (fullAt: number, now: number): number => Math.max(0, (fullAt - now) / 1000 - 1)
