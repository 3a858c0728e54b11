/**
 * The signaling budget of one client connection. A relay delivers a signal once per
 * receiver, so the sender is charged the bytes of every copy: a token bucket of delivered
 * signal bytes that refills at {@link SIGNAL_BYTES_PER_SECOND} and holds
 * {@link SIGNAL_BURST_BYTES}. A sender that would overdraw it is closed (1008) rather than
 * slowed down: honest replicas signal a few KiB per peer they link with, so one that far
 * over it is filling other clients' send buffers, not linking.
 */
import { LimitError } from '../../shared/errors.js'
import { CloseCode } from '../../shared/wire/close-codes.js'

/**
 * Bytes of signals a connection may have delivered per second, sustained: after a burst,
 * enough for a replica to link with a dozen newcomers a second (a few KiB each), and at most
 * 4 MiB into a client that stopped reading before keep-alive drops it (two ping intervals,
 * 60 s by default), far from the 32 MiB that drop a slow reader.
 */
export const SIGNAL_BYTES_PER_SECOND = 64 * 1024

/**
 * Bytes of signals a connection may have delivered at once. A replica that opens a document
 * with 100 other clients says `hi` to all of them (under 100 bytes a copy), and sends an offer
 * or answer (an SDP of about a KiB) and a dozen ICE candidates (a few hundred bytes each) to
 * each: some 500 KiB, with room to spare; and less than a 32 MiB send buffer by far.
 */
export const SIGNAL_BURST_BYTES = 1024 * 1024

/** Milliseconds of refill the bucket holds. */
const BURST_MS = SIGNAL_BURST_BYTES * 1000 / SIGNAL_BYTES_PER_SECOND

/** See the module comment. */
export class SignalBudget {
  /** Milliseconds since the epoch at which the bucket would be full again (the generic cell rate algorithm). */
  private fullAt = 0

  /** Takes `bytes` from the bucket; throws a {@link LimitError} (1008), taking nothing, if it holds fewer. */
  take (bytes: number, now = Date.now()): void {
    const fullAt = Math.max(this.fullAt, now) + bytes * 1000 / SIGNAL_BYTES_PER_SECOND
    if (fullAt - now > BURST_MS) throw new LimitError(CloseCode.policyViolation, `signals to other clients over ${SIGNAL_BYTES_PER_SECOND} bytes per second (bursts of ${SIGNAL_BURST_BYTES})`)
    this.fullAt = fullAt
  }
}
