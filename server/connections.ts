/** Helpers shared by the connection handlers: frame intake and closing with a reason. */
import type { Logger } from 'pino'
import type { RawData } from 'ws'
import { ProtocolError, ownBytes } from '../shared/bytes.js'
import { CloseCode } from '../shared/close-codes.js'
import { AuthError } from './auth.js'
import { LimitError } from './limits.js'

/** Frames accepted for a document that is still loading; more is a misbehaving client. */
export const MAX_FRAMES_BEFORE_LOAD = 1024

/** Something that can be closed with a code and a reason: a ws socket or a Link. */
interface Closable {
  close(code: number, reason: string): void
}

/** Closes `connection` with `code` and a reason trimmed to the 123 bytes a close frame allows. */
export function closeWith (connection: Closable, code: number, reason: string): void {
  connection.close(code, truncateReason(reason))
}

/** A received WebSocket message as bytes that own their buffer (see `ownBytes`). */
export function toFrame (data: RawData): Uint8Array {
  if (Array.isArray(data)) return ownBytes(Buffer.concat(data))
  return ownBytes(data instanceof ArrayBuffer ? new Uint8Array(data) : data)
}

/**
 * Closes `connection` after `error` from handling a frame: a malformed message closes with
 * 4400, an exceeded limit or failed authentication with its own code, each with its reason.
 */
export function closeForError (connection: Closable, error: unknown, log: Logger, context: object): void {
  if (error instanceof ProtocolError || error instanceof LimitError || error instanceof AuthError) {
    log.info({ ...context, reason: error.message }, 'closing connection')
    closeWith(connection, error instanceof ProtocolError ? CloseCode.badRequest : error.code, error.message)
  } else {
    log.error({ ...context, err: error }, 'error while handling a message')
    closeWith(connection, CloseCode.badRequest, 'message could not be processed')
  }
}

function truncateReason (reason: string): string {
  const bytes = new TextEncoder().encode(reason)
  return bytes.length <= 123 ? reason : new TextDecoder().decode(bytes.slice(0, 119)) + '...'
}
