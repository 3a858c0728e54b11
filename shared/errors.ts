/**
 * PetalDB's typed errors, all {@link PetalError}s: each says what happened as the close code
 * that tells a peer why (see `wire/close-codes.ts`), and whether trying again can help. Apps
 * switch on the class or on `code`, and retry when `retryable`, instead of reading messages.
 */
import { CloseCode } from './wire/close-codes.js'

/** The codes of conditions that pass: the same request may succeed later, or at another relay. */
const RETRYABLE = new Set<number>([
  CloseCode.goingAway,
  CloseCode.tryAgainLater,
  CloseCode.peerIdInUse,
  CloseCode.upstreamUnavailable,
  CloseCode.documentUnavailable,
  CloseCode.documentMoved
])

/** Whether a refusal or close with `code` may pass if the same request is made again later. */
export const isRetryable = (code: number): boolean => RETRYABLE.has(code)

/** The base of every error PetalDB throws on purpose. */
export class PetalError extends Error {
  override name = 'PetalError'
  /**
   * @param code the close code (`CloseCode`) that tells a peer why
   * @param retryable whether the same request may succeed later (after a reconnect, a wait, or at another relay)
   */
  constructor (readonly code: number, message: string, readonly retryable = isRetryable(code)) {
    super(message)
  }
}

/** Bytes from a peer that do not form a valid message, or a request that is not valid (4400). */
export class ProtocolError extends PetalError {
  override name = 'ProtocolError'
  constructor (message: string) {
    super(CloseCode.badRequest, message)
  }
}

/** A limit was exceeded; `code` is 1008, 1009 or 1013 (the last one passes). */
export class LimitError extends PetalError {
  override name = 'LimitError'
}

/** Missing or invalid credentials (4401), credentials that do not allow this (4403), or a peer id another live connection holds (4409). */
export class AuthError extends PetalError {
  override name = 'AuthError'
}

/** A stored document cannot be loaded now; the stored data is left untouched (4503 to peers). */
export class DocLoadError extends PetalError {
  override name = 'DocLoadError'
  constructor (message: string) {
    super(CloseCode.documentUnavailable, message)
  }
}

/** The document was deleted, and stays deleted (4410). */
export class DocDeletedError extends PetalError {
  override name = 'DocDeletedError'
  constructor (docId: string) {
    super(CloseCode.deleted, `document ${docId} was deleted`)
  }
}

/** An update could not be stored (disk full, I/O error): the document is reloaded from what is stored, and its peers are asked to try again (4503). */
export class StorageError extends PetalError {
  override name = 'StorageError'
  constructor (message: string) {
    super(CloseCode.documentUnavailable, message)
  }
}

/**
 * A relay no longer holds its claim on a document (another relay claimed it since, or its
 * own lease lapsed): what it would have written as the document's owner (a compaction) was
 * refused, and it must stop serving the document. Its peers are asked to try again (4503).
 */
export class FencedError extends StorageError {
  override name = 'FencedError'
}

/**
 * The document is served by another relay now: native peers are redirected to it, stock
 * clients are closed with 4504 and reconnect (through any relay, which passes them on).
 */
export class MovedError extends PetalError {
  override name = 'MovedError'
  constructor (readonly relay: { id: string, url: string }, message: string) {
    super(CloseCode.documentMoved, message)
  }
}

/** A relay refused a document, or the connection it syncs over: its code (see `wire/close-codes.ts`) and reason. */
export class RefusedError extends PetalError {
  override name = 'RefusedError'
  readonly reason: string
  constructor (refusal: { code: number, reason: string }, message: string) {
    super(refusal.code, message)
    this.reason = refusal.reason
  }
}

/**
 * The replica, or the document, was closed while the call waited, or before it was made
 * (1001); open it again to go on.
 */
export class ClosedError extends PetalError {
  override name = 'ClosedError'
  constructor (message: string) {
    super(CloseCode.goingAway, message, false)
  }
}

/** A call the replica cannot make as asked (a document not open, no relay configured); fix the call (4400). */
export class UsageError extends PetalError {
  override name = 'UsageError'
  constructor (message: string) {
    super(CloseCode.badRequest, message, false)
  }
}
