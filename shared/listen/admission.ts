/**
 * What a relay decides about a WebSocket upgrade before any frame is read: whether the
 * browser origin is allowed, and, for a stock y-websocket client, which document it asks
 * for and whether its token (URL parameter `token`) allows it.
 */
import type { IncomingMessage } from 'node:http'
import { CloseCode } from '../wire/close-codes.js'
import { docIdProblem, type DocId } from '../wire/doc-id.js'
import { OPEN_GRANT, canRead, type TokenVerifier, type Grant } from './auth.js'
import { AuthError } from '../errors.js'

/** The verdict on a stock client's upgrade: serve `docId` with `grant`, or close with `code`. */
export type StockAdmission =
  | { ok: true, docId: DocId, grant: Grant, query: string }
  | { ok: false, code: number, reason: string }

/** Whether a browser's `Origin` is allowed (requests without one are not from browsers). */
export function originAllowed (req: IncomingMessage, allowedOrigins: string[] | undefined): boolean {
  const origin = req.headers.origin
  return allowedOrigins === undefined || allowedOrigins.length === 0 || origin === undefined || allowedOrigins.includes(origin)
}

/** Decides on a stock client's upgrade; see the module comment. */
export async function admitStockClient (url: string, authenticator: TokenVerifier | null): Promise<StockAdmission> {
  const docId = docIdFromUrl(url)
  if (typeof docId !== 'string') return { ok: false, code: CloseCode.badRequest, reason: docId.problem }
  const at = url.indexOf('?')
  const query = at === -1 ? '' : url.slice(at)
  if (authenticator === null) return { ok: true, docId, grant: OPEN_GRANT, query }
  try {
    const grant = await authenticator.verify(new URLSearchParams(query).get('token'))
    if (!canRead(grant, docId)) return { ok: false, code: CloseCode.forbidden, reason: `no access to ${docId}` }
    return { ok: true, docId, grant, query }
  } catch (error) {
    if (error instanceof AuthError) return { ok: false, code: error.code, reason: error.message }
    throw error
  }
}

/** The document id in a request path (`/notes/1?token=...` → `notes/1`), or why it is invalid. */
export function docIdFromUrl (url: string): DocId | { problem: string } {
  const path = url.split('?', 1)[0]!.slice(1)
  let id: string
  try {
    id = decodeURIComponent(path)
  } catch {
    return { problem: 'document id is not valid percent-encoding' }
  }
  const problem = docIdProblem(id)
  return problem === null ? id as DocId : { problem }
}
