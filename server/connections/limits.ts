/**
 * Per-connection and per-document limits of a relay, with their defaults. Exceeding one
 * closes the offending connection with a specific close code (1008 policy violation, 1009
 * too big, 1013 try again later); other connections and documents are unaffected.
 */
import { CloseCode } from '../../shared/wire/close-codes.js'

/** Relay limits; every field has a default (see {@link DEFAULT_LIMITS}). */
export interface Limits {
  /** Largest WebSocket frame, in bytes (1009). */
  maxFrameBytes: number
  /** Documents one native connection may have open (1008). */
  maxDocsPerConnection: number
  /** Simultaneous connections from one IP address (1013). */
  maxConnectionsPerIp: number
  /** Messages per second per connection, averaged over a one-second burst (1008). */
  maxMessagesPerSecond: number
  /** Bytes per second per connection, averaged over a one-second burst (1008). */
  maxBytesPerSecond: number
  /** Stored size of one document (snapshot + log), in bytes (1009). */
  maxDocumentBytes: number
  /** Bytes of updates of one document stored while some client's clocks have a gap, i.e. waiting for missing dependencies (1008). */
  maxPendingBytes: number
  /** Distinct client ids in one document's structs and deletions (1008); a stored document with more is refused (4503). */
  maxClientsPerDocument: number
  /** Awareness entries per document (1008). */
  maxAwarenessEntries: number
  /** Bytes of one awareness state (1008). */
  maxAwarenessStateBytes: number
  /** Bytes queued for sending to one connection before it counts as a slow reader and is dropped. */
  maxBufferedBytes: number
}

export const DEFAULT_LIMITS: Limits = {
  maxFrameBytes: 16 * 1024 * 1024,
  maxDocsPerConnection: 1000,
  maxConnectionsPerIp: 200,
  maxMessagesPerSecond: 2000,
  maxBytesPerSecond: 32 * 1024 * 1024,
  maxDocumentBytes: 256 * 1024 * 1024,
  maxPendingBytes: 4 * 1024 * 1024,
  maxClientsPerDocument: 100_000,
  maxAwarenessEntries: 1000,
  maxAwarenessStateBytes: 64 * 1024,
  maxBufferedBytes: 32 * 1024 * 1024
}

/** Thrown when a limit is exceeded; `code` is the close code to use. */
export class LimitError extends Error {
  override name = 'LimitError'
  constructor (readonly code: number, message: string) {
    super(message)
  }
}

/** A token bucket allowing `perSecond` on average, with bursts of one second's worth. */
export class RateLimiter {
  private tokens: number
  private last = Date.now()

  constructor (private readonly perSecond: number) {
    this.tokens = perSecond
  }

  /** Takes `amount` tokens; returns false if there are not enough. */
  take (amount = 1): boolean {
    const now = Date.now()
    this.tokens = Math.min(this.perSecond, this.tokens + (now - this.last) / 1000 * this.perSecond)
    this.last = now
    if (this.tokens < amount) return false
    this.tokens -= amount
    return true
  }
}

/** Checks one received frame against a connection's rate limits; throws {@link LimitError}. */
export function connectionRateGuard (limits: Limits): (frame: Uint8Array) => void {
  const messages = new RateLimiter(limits.maxMessagesPerSecond)
  const bytes = new RateLimiter(limits.maxBytesPerSecond)
  return frame => {
    if (!messages.take()) throw new LimitError(CloseCode.policyViolation, `more than ${limits.maxMessagesPerSecond} messages per second`)
    if (!bytes.take(frame.length)) throw new LimitError(CloseCode.policyViolation, `more than ${limits.maxBytesPerSecond} bytes per second`)
  }
}
