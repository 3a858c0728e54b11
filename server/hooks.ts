/**
 * Hooks for a relay used as a library (`startRelay({ hooks })`), in the spirit of
 * Hocuspocus's: `authenticate` decides what a token allows; the others tell the app what
 * happened, after it happened. Those are called synchronously and must be quick; one that
 * throws is logged and changes nothing (the write it reports is already durable).
 */
import type { Logger } from 'pino'
import { AuthError } from '../shared/errors.js'
import type { Grant, TokenVerifier } from '../shared/listen/auth.js'
import type { CommitInfo } from '../shared/storage/sqlite-store.js'
import { CloseCode } from '../shared/wire/close-codes.js'

/** A durable change of a document. */
export interface ChangeEvent {
  docId: string
  /** The update as stored (a Yjs v1 update). */
  update: Uint8Array
  /** Who sent it: a client (native or stock), another relay of the cluster, or the HTTP API. */
  source: 'client' | 'relay' | 'http'
}

/** See the module comment. */
export interface RelayHooks {
  /**
   * Checks a token (from a WebSocket connection, a token refresh, or an HTTP request)
   * instead of the relay's `authKeys`, and returns what it allows; `null` when the client
   * sent none. Throw to refuse (an {@link AuthError} keeps its code; anything else is 4401,
   * HTTP 401, with its message).
   */
  authenticate?: (token: string | null) => Grant | Promise<Grant>
  /** A document was loaded from storage into memory. */
  load?: (event: { docId: string }) => void
  /** A change to a document is durable: committed, and on the write quorum in a cluster. */
  change?: (event: ChangeEvent) => void
  /** A storage commit finished (the relay's own SQLite store). */
  store?: (event: CommitInfo) => void
  /** A document was deleted on this relay. */
  delete?: (event: { docId: string }) => void
}

/** The `authenticate` hook as the relay's token verifier. */
export function hookVerifier (authenticate: NonNullable<RelayHooks['authenticate']>): TokenVerifier {
  return {
    async verify (token) {
      try {
        return await authenticate(token === undefined || token === '' ? null : token)
      } catch (error) {
        if (error instanceof AuthError) throw error
        throw new AuthError(CloseCode.unauthorized, error instanceof Error ? error.message : 'refused by the authenticate hook')
      }
    }
  }
}

/** Calls hook `name` with `event`, if the app set it; a hook that throws is logged. */
export function callHook<K extends Exclude<keyof RelayHooks, 'authenticate'>> (hooks: RelayHooks, name: K, event: Parameters<NonNullable<RelayHooks[K]>>[0], logger: Logger): void {
  const hook = hooks[name] as ((event: unknown) => void) | undefined
  if (hook === undefined) return
  try {
    hook(event)
  } catch (error) {
    logger.error({ err: error, hook: name }, 'a relay hook threw')
  }
}
