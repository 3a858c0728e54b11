/** Helpers shared by both protocols' connection handlers: frame intake and closing with a reason. */
import type { Logger } from 'pino'
import type { RawData } from 'ws'
import { ProtocolError, ownBytes } from '../shared/bytes.js'
import { CloseCode } from '../shared/close-codes.js'

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

/** Closes `connection` after `error` from handling a frame: 4400 with the reason for a ProtocolError. */
export function closeForError (connection: Closable, error: unknown, log: Logger, context: object): void {
  if (error instanceof ProtocolError) {
    log.info({ ...context, reason: error.message }, 'closing connection after a malformed message')
    closeWith(connection, CloseCode.badRequest, error.message)
  } else {
    log.error({ ...context, err: error }, 'error while handling a message')
    connection.close(CloseCode.badRequest, 'message could not be processed')
  }
}

/** `reason` trimmed to the 123 bytes a close frame allows. */
function truncateReason (reason: string): string {
  const bytes = new TextEncoder().encode(reason)
  return bytes.length <= 123 ? reason : new TextDecoder().decode(bytes.slice(0, 119)) + '...'
}
