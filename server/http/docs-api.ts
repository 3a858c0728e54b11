/**
 * The HTTP document API, on the relay's port:
 *
 * - `GET /v1/docs/<id>`: the whole document as one Yjs v1 update; `?format=json` renders it.
 * - `POST /v1/docs/<id>`: applies a Yjs v1 update; 200 once it is durable, as a native
 *   acknowledgement is (committed, and on a write quorum in a cluster). Live clients get it at once.
 * - `GET /v1/docs?prefix=P&limit=N&after=ID`: `{ docs: [{ id, bytes, updatedAt }], next }`.
 * - `DELETE /v1/docs/<id>`: deletes it on every home (see `DocumentRegistry.delete`); 404
 *   if none had it, also when it is deleted already (a retry finishes what is left of its erasure).
 *
 * Tokens (`Authorization: Bearer <JWT>`) are checked by the WebSocket rules. In a cluster any
 * relay answers: a document's requests go to one of its homes, and listings and deletions
 * to every relay (with `scope=local`, a relay answers for itself only).
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Logger } from 'pino'
import { DocDeletedError, MovedError, PetalError } from '../../shared/errors.js'
import { OPEN_GRANT, canRead, canWrite, type TokenVerifier, type Grant } from '../../shared/listen/auth.js'
import type { Limits } from '../../shared/listen/limits.js'
import type { ClusterMember } from '../../shared/placement.js'
import { CloseCode } from '../../shared/wire/close-codes.js'
import { parseDocId, type DocId } from '../../shared/wire/doc-id.js'
import type { DocumentRegistry } from '../documents/registry.js'
import type { BodyBudget } from './body-budget.js'
import { documentJson } from './doc-json.js'
import { HttpError } from './http-error.js'
import { readBody, sendError, sendJson } from './respond.js'

/** What the document API works with. */
export interface DocsApiContext {
  registry: DocumentRegistry
  /** Lists stored document ids (the registry's store). */
  list: (prefix: string) => Promise<DocId[]>
  authenticator: TokenVerifier | null
  limits: Limits
  /** The bytes of request bodies held while they arrive, per address and in all. */
  bodies: BodyBudget
  logger: Logger
  /**
   * Among several relays: those that hold a document (this one included, if it does), the
   * relays whose listings are merged (null: this relay's store lists every document, as
   * PostgreSQL does), and this relay's id.
   */
  cluster: { homesOf: (docId: DocId) => ClusterMember[], listFrom: ClusterMember[] | null, selfId: string } | null
}

const PREFIX = '/v1/docs'

/** The HTTP status of each code a {@link PetalError} carries; others answer 503 if they pass, 400 if not. */
const HTTP_STATUS: Partial<Record<number, number>> = {
  [CloseCode.badRequest]: 400,
  [CloseCode.unauthorized]: 401,
  [CloseCode.forbidden]: 403,
  [CloseCode.policyViolation]: 422,
  [CloseCode.messageTooBig]: 413
}
const DEFAULT_LIMIT = 100
const MAX_LIMIT = 1000

/** A document in a listing. */
interface Listed { id: string, bytes: number, updatedAt: string | null }

/** Answers `req` if it is for the document API; returns false if it is not. */
export function answerDocsApi (req: IncomingMessage, res: ServerResponse, context: DocsApiContext): boolean {
  const url = new URL(req.url ?? '/', 'http://relay')
  if (url.pathname !== PREFIX && !url.pathname.startsWith(`${PREFIX}/`)) return false
  route(req, res, url, context).catch((error: unknown) => {
    const http = toHttpError(error)
    if (http.status >= 500) context.logger.error({ err: error, url: url.pathname }, 'document API request failed')
    sendError(res, http)
  })
  return true
}

async function route (req: IncomingMessage, res: ServerResponse, url: URL, context: DocsApiContext): Promise<void> {
  const local = url.searchParams.get('scope') === 'local'
  if (url.pathname === PREFIX || url.pathname === `${PREFIX}/`) {
    if (req.method !== 'GET') throw new HttpError(405, `${req.method} is not allowed on ${PREFIX}`)
    return sendJson(res, 200, await listDocs(url, await grantOf(req, context), req, context, local))
  }
  const docId = docIdOf(url)
  const homes = context.cluster === null ? null : context.cluster.homesOf(docId)
  switch (req.method) {
    case 'GET': {
      authorize(await grantOf(req, context), docId, 'read')
      if (homes !== null && !isHome(homes, context)) return forward(req, res, url, homes, null)
      return await hereOrWhereMoved(() => getDoc(res, docId, url.searchParams.get('format'), context), home => forward(req, res, url, [home], null))
    }
    case 'POST': {
      authorize(await grantOf(req, context), docId, 'write')
      const body = await readBody(req, context.limits.maxFrameBytes, context.bodies)
      if (homes !== null && !isHome(homes, context)) return forward(req, res, url, homes, body)
      return await hereOrWhereMoved(() => postUpdate(res, docId, body, context), home => forward(req, res, url, [home], body))
    }
    case 'DELETE': {
      authorize(await grantOf(req, context), docId, 'write')
      if (homes === null || local) {
        if (!await context.registry.delete(docId)) throw new HttpError(404, `no document ${docId}`)
        res.writeHead(204).end()
        return
      }
      return deleteEverywhere(req, res, url, docId, homes, context)
    }
    default:
      throw new HttpError(405, `${req.method ?? ''} is not allowed on a document`)
  }
}

/**
 * Answers here, or, if the document turned out to be served by another relay (its home
 * changed between routing and loading), forwards to that relay instead.
 */
async function hereOrWhereMoved (here: () => Promise<void>, forwardTo: (home: ClusterMember) => Promise<void>): Promise<void> {
  try {
    await here()
  } catch (error) {
    if (error instanceof MovedError) return await forwardTo(error.relay)
    throw error
  }
}

function docIdOf (url: URL): DocId {
  let raw: string
  try {
    raw = decodeURIComponent(url.pathname.slice(PREFIX.length + 1))
  } catch {
    throw new HttpError(400, 'the document id is not valid percent-encoding')
  }
  return parseDocId(raw)
}

async function grantOf (req: IncomingMessage, context: DocsApiContext): Promise<Grant> {
  if (context.authenticator === null) return OPEN_GRANT
  const header = req.headers.authorization ?? ''
  const token = /^Bearer\s+(\S+)$/i.exec(header)?.[1]
  return await context.authenticator.verify(token)
}

function authorize (grant: Grant, docId: DocId, access: 'read' | 'write'): void {
  const allowed = access === 'read' ? canRead(grant, docId) : canWrite(grant, docId)
  if (!allowed) throw new HttpError(403, `the token does not allow ${access === 'read' ? 'reading' : 'writing'} ${docId}`)
}

async function getDoc (res: ServerResponse, docId: DocId, format: string | null, context: DocsApiContext): Promise<void> {
  if (format !== null && format !== 'json' && format !== 'binary') throw new HttpError(400, `unknown format ${JSON.stringify(format)}: json or binary`)
  const update = await context.registry.with(docId, doc => doc.isEmpty ? null : doc.wholeUpdate()).catch((error: unknown) => {
    if (error instanceof DocDeletedError) return null
    throw error
  })
  if (update === null) throw new HttpError(404, `no document ${docId}`)
  if (format === 'json') return sendJson(res, 200, documentJson(update))
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': update.length })
  res.end(update)
}

async function postUpdate (res: ServerResponse, docId: DocId, update: Uint8Array, context: DocsApiContext): Promise<void> {
  if (update.length === 0) throw new HttpError(400, 'the body must be a Yjs v1 update')
  await context.registry.with(docId, doc => doc.applyUpdate(update, null))
  sendJson(res, 200, { ok: true })
}

/** This relay's part of a listing: stored documents it has, that `grant` may read, after `after`. */
async function listLocal (prefix: string, after: string, limit: number, grant: Grant, context: DocsApiContext): Promise<{ docs: Listed[], more: boolean }> {
  const docs: Listed[] = []
  for (const id of await context.list(prefix)) {
    if (id <= after || !canRead(grant, id)) continue
    const stat = await context.registry.stat(id)
    if (stat === null || stat.deleted || stat.bytes === 0) continue
    if (docs.length === limit) return { docs, more: true }
    docs.push({ id, bytes: stat.bytes, updatedAt: stat.updatedAt === 0 ? null : new Date(stat.updatedAt).toISOString() })
  }
  return { docs, more: false }
}

async function listDocs (url: URL, grant: Grant, req: IncomingMessage, context: DocsApiContext, local: boolean): Promise<{ docs: Listed[], next: string | null }> {
  const prefix = url.searchParams.get('prefix') ?? ''
  const after = url.searchParams.get('after') ?? ''
  const limitText = url.searchParams.get('limit')
  const limit = limitText === null ? DEFAULT_LIMIT : Number(limitText)
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) throw new HttpError(400, `limit must be an integer from 1 to ${MAX_LIMIT}`)
  const mine = await listLocal(prefix, after, limit, grant, context)
  const listFrom = context.cluster?.listFrom ?? null
  if (listFrom === null || local) return { docs: mine.docs, next: mine.more ? mine.docs.at(-1)!.id : null }
  // Each relay lists the documents it is a home of: merge every relay's first `limit`.
  const others = await Promise.all(listFrom.filter(m => m.id !== context.cluster!.selfId).map(async member => {
    const response = await relayFetch(member, `${PREFIX}?${new URLSearchParams({ prefix, after, limit: String(limit), scope: 'local' })}`, { headers: forwardedHeaders(req) })
    if (!response.ok) throw new HttpError(502, `relay ${member.id} answered ${response.status} to a listing`)
    return await response.json() as { docs: Listed[], next: string | null }
  }))
  const byId = new Map<string, Listed>()
  let more = mine.more || others.some(other => other.next !== null)
  for (const doc of [...mine.docs, ...others.flatMap(other => other.docs)]) {
    const seen = byId.get(doc.id)
    if (seen === undefined || (doc.updatedAt ?? '') > (seen.updatedAt ?? '')) byId.set(doc.id, doc)
  }
  const docs = [...byId.values()].sort((a, b) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
  if (docs.length > limit) more = true
  const page = docs.slice(0, limit)
  return { docs: page, next: more && page.length > 0 ? page.at(-1)!.id : null }
}

/** Deletes on every home of the document: 204 if one had it, 404 if none did, 503 if none answered. */
async function deleteEverywhere (req: IncomingMessage, res: ServerResponse, url: URL, docId: DocId, homes: ClusterMember[], context: DocsApiContext): Promise<void> {
  const outcomes = await Promise.all(homes.map(async (home): Promise<'deleted' | 'absent' | 'unreachable'> => {
    if (home.id === context.cluster!.selfId) return await context.registry.delete(docId) ? 'deleted' : 'absent'
    try {
      const response = await relayFetch(home, `${url.pathname}?scope=local`, { method: 'DELETE', headers: forwardedHeaders(req) })
      if (response.status === 204) return 'deleted'
      if (response.status === 404) return 'absent'
      throw new HttpError(response.status, `relay ${home.id} answered ${response.status}`)
    } catch (error) {
      if (error instanceof HttpError && error.status < 500) throw error
      // A home that is away learns of the deletion from the others' tombstones when its links come back.
      context.logger.warn({ err: error, doc: docId, relay: home.id }, 'a home of the document did not answer the deletion')
      return 'unreachable'
    }
  }))
  if (outcomes.every(outcome => outcome === 'unreachable')) throw new HttpError(503, `no home of ${docId} could be reached`)
  if (!outcomes.includes('deleted')) throw new HttpError(404, `no document ${docId}`)
  res.writeHead(204).end()
}

/** Passes the request to the first home that answers, and its answer back. */
async function forward (req: IncomingMessage, res: ServerResponse, url: URL, homes: ClusterMember[], body: Uint8Array<ArrayBuffer> | null): Promise<void> {
  for (const home of homes) {
    let response: Response
    try {
      response = await relayFetch(home, `${url.pathname}${url.search}`, { method: req.method!, headers: forwardedHeaders(req), ...(body === null ? {} : { body }) })
    } catch {
      continue
    }
    const answer = new Uint8Array(await response.arrayBuffer())
    res.writeHead(response.status, { 'content-type': response.headers.get('content-type') ?? 'application/octet-stream', 'content-length': answer.length })
    res.end(answer)
    return
  }
  throw new HttpError(503, 'no home of the document could be reached')
}

function isHome (homes: ClusterMember[], context: DocsApiContext): boolean {
  return homes.some(home => home.id === context.cluster!.selfId)
}

function forwardedHeaders (req: IncomingMessage): Record<string, string> {
  return {
    ...(req.headers.authorization === undefined ? {} : { authorization: req.headers.authorization }),
    ...(req.headers['content-type'] === undefined ? {} : { 'content-type': req.headers['content-type'] })
  }
}

/** A request to another relay of the cluster, at its WebSocket URL's HTTP twin. */
function relayFetch (member: ClusterMember, path: string, init: RequestInit): Promise<Response> {
  const base = member.url.replace(/^ws/, 'http').replace(/\/$/, '')
  return fetch(`${base}${path}`, { ...init, signal: AbortSignal.timeout(10_000) })
}

function toHttpError (error: unknown): HttpError {
  if (error instanceof HttpError) return error
  if (!(error instanceof PetalError)) return new HttpError(500, 'internal error')
  if (error instanceof DocDeletedError) return new HttpError(410, `${error.message}, and stays deleted`)
  if (error instanceof MovedError) return new HttpError(503, `${error.message} now; try again`)
  return new HttpError(HTTP_STATUS[error.code] ?? (error.retryable ? 503 : 400), error.message)
}
