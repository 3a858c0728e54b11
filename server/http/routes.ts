/**
 * The relay's plain HTTP requests (those that are not WebSocket upgrades): `GET /healthz`,
 * `GET /metrics` (Prometheus text) and the document API under `/v1/docs`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { RelayMetrics } from '../metrics.js'
import { answerDocsApi, type DocsApiContext } from './docs-api.js'
import { sendError, sendJson } from './respond.js'

/** What the routes answer from. */
export interface RoutesContext {
  /** `/healthz`'s answer: 200 when its status is `ok`, else 503. */
  health: () => { status: string }
  metrics: RelayMetrics
  docsApi: DocsApiContext
  /** Browser origins allowed to call the document API (the relay's `--allowed-origin`); undefined: any. */
  allowedOrigins: string[] | undefined
}

/** Answers a plain HTTP request to the relay. */
export function answerHttp (req: IncomingMessage, res: ServerResponse, context: RoutesContext): void {
  if (allowCrossOrigin(req, res, context.allowedOrigins)) return
  if (answerDocsApi(req, res, context.docsApi)) return
  const path = (req.url ?? '/').split('?', 1)[0]
  if (req.method === 'GET' && path === '/healthz') {
    const health = context.health()
    return sendJson(res, health.status === 'ok' ? 200 : 503, health)
  }
  if (req.method === 'GET' && path === '/metrics') {
    context.metrics.exposition().then(({ contentType, text }) => {
      res.writeHead(200, { 'content-type': contentType })
      res.end(text)
    }, (error: unknown) => sendError(res, error))
    return
  }
  res.writeHead(426, { 'content-type': 'text/plain' })
  res.end('PetalDB relay: connect with a WebSocket to /<docId>; HTTP: GET /healthz, GET /metrics, /v1/docs\n')
}

/**
 * CORS for pages of allowed origins (any, without `--allowed-origin`, as for WebSockets):
 * tokens travel in the Authorization header, never in cookies, so a page of another origin
 * can do only what its token allows. Answers a preflight request itself (returns true).
 */
function allowCrossOrigin (req: IncomingMessage, res: ServerResponse, allowed: string[] | undefined): boolean {
  const origin = req.headers.origin
  if (origin === undefined || (allowed !== undefined && !allowed.includes(origin))) return false
  res.setHeader('access-control-allow-origin', origin)
  res.setHeader('vary', 'origin')
  if (req.method !== 'OPTIONS') return false
  res.writeHead(204, {
    'access-control-allow-methods': 'GET, POST, DELETE',
    'access-control-allow-headers': 'authorization, content-type',
    'access-control-max-age': '600'
  })
  res.end()
  return true
}
