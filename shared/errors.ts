/**
 * The errors that end the handling of a peer's message. Each carries the WebSocket close
 * code (or document refusal code) that tells the peer why; see `wire/close-codes.ts`.
 */
import { CloseCode } from './wire/close-codes.js'

/** Bytes from a peer that do not form a valid message (4400). */
export class ProtocolError extends Error {
  override name = 'ProtocolError'
  readonly code: number = CloseCode.badRequest
}

/** A limit was exceeded; `code` is 1008, 1009 or 1013. */
export class LimitError extends Error {
  override name = 'LimitError'
  constructor (readonly code: number, message: string) {
    super(message)
  }
}

/** Missing or invalid credentials (4401), credentials that do not allow this (4403), or a peer id another live connection holds (4409). */
export class AuthError extends Error {
  override name = 'AuthError'
  constructor (readonly code: number, message: string) {
    super(message)
  }
}

/** A stored document cannot be loaded; the stored data is left untouched (4503 to peers). */
export class DocLoadError extends Error {
  override name = 'DocLoadError'
  readonly code: number = CloseCode.documentUnavailable
}

/** The document was deleted, and stays deleted (4410). */
export class DocDeletedError extends Error {
  override name = 'DocDeletedError'
  readonly code: number = CloseCode.deleted
  constructor (docId: string) {
    super(`document ${docId} was deleted`)
  }
}

/** An update could not be stored (disk full, I/O error): the document is reloaded from what is stored, and its peers are asked to try again (4503). */
export class StorageError extends Error {
  override name = 'StorageError'
  readonly code: number = CloseCode.documentUnavailable
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
export class MovedError extends Error {
  override name = 'MovedError'
  readonly code: number = CloseCode.documentMoved
  constructor (readonly relay: { id: string, url: string }, message: string) {
    super(message)
  }
}

/** A relay refused a document, or the connection it syncs over: its code (see `wire/close-codes.ts`) and reason. */
export class RefusedError extends Error {
  override name = 'RefusedError'
  readonly code: number
  readonly reason: string
  constructor (refusal: { code: number, reason: string }, message: string) {
    super(message)
    this.code = refusal.code
    this.reason = refusal.reason
  }
}
