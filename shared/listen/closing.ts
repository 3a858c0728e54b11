/** Helpers shared by the connection handlers: frame intake and closing with a reason. */
import type { Logger } from './logger.js'
import type { RawData } from 'ws'
import { ownBytes } from '../wire/bytes.js'
import { CloseCode } from '../wire/close-codes.js'
import { DocLoadError, PetalError } from '../errors.js'

/** How long a native client or an inbound relay link may take to say hello. */
export const HELLO_DEADLINE_MS = 10_000


/** Something that can be closed with a code and a reason: a ws socket or a Link. */
interface Closable {
  close(code: number, reason: string): void
}

/** Closes `connection` with `code` and a reason trimmed to the 123 bytes a close frame allows. */
export function closeWith (connection: Closable, code: number, reason: string): void {
  try {
    connection.close(code, truncateReason(reason))
  } catch {
    // A socket that cannot send a close frame any more is being torn down anyway.
  }
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
export function closeForError (connection: Closable, error: unknown, logger: Logger, context: object): void {
  if (error instanceof DocLoadError) {
    closeWith(connection, error.code, `document failed to load: ${error.message}`)
  } else if (error instanceof PetalError) {
    logger.info({ ...context, reason: error.message }, 'closing connection')
    closeWith(connection, error.code, error.message)
  } else {
    logger.error({ ...context, err: error }, 'error while handling a message')
    closeWith(connection, CloseCode.badRequest, 'message could not be processed')
  }
}

/** `reason` cut on a character boundary so that it fits the 123 bytes a close frame allows. */
function truncateReason (reason: string): string {
  const encoder = new TextEncoder()
  if (encoder.encode(reason).length <= 123) return reason
  let kept = ''
  let bytes = 3 // the '...'
  for (const char of reason) {
    bytes += encoder.encode(char).length
    if (bytes > 123) break
    kept += char
  }
  return kept + '...'
}
