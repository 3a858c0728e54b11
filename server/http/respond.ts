/**
 * The small vocabulary of the relay's HTTP answers: an error carries its status and a
 * reason that is sent as JSON, so every route fails the same way.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { BodyBudget } from './body-budget.js'
import { HttpError } from './http-error.js'

/** Sends `value` as JSON with `status`. */
export function sendJson (res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
  res.end(body)
}

/** Sends an error: an {@link HttpError} with its status, anything else as 500 (without its details). */
export function sendError (res: ServerResponse, error: unknown): void {
  if (res.headersSent) {
    res.destroy()
    return
  }
  if (error instanceof HttpError) sendJson(res, error.status, { error: error.message })
  else sendJson(res, 500, { error: 'internal error' })
}

/**
 * The request body, at most `maxBytes` (413 beyond, without reading the rest). Its bytes are
 * taken from `budget` as they arrive (429 or 503 once that is spent, at once if the declared
 * length does not fit) and given back when it ends, fails or is cut off. The listener closes
 * the socket of a body that falls behind its pace.
 */
export function readBody (req: IncomingMessage, maxBytes: number, budget: BodyBudget): Promise<Uint8Array<ArrayBuffer>> {
  const declared = Number(req.headers['content-length'] ?? NaN)
  if (declared > maxBytes) return Promise.reject(new HttpError(413, `body larger than ${maxBytes} bytes`))
  const ip = req.socket.remoteAddress ?? ''
  try {
    if (declared > 0) budget.check(ip, declared)
  } catch (error) {
    return Promise.reject(error)
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let length = 0
    const finish = (error: unknown): void => {
      req.off('data', onData)
      req.off('end', onEnd)
      req.off('error', finish)
      req.off('close', onClose)
      budget.release(ip, length)
      if (error === null) return resolve(new Uint8Array(Buffer.concat(chunks, length)))
      req.resume() // the rest is read and dropped
      reject(error)
    }
    const onData = (chunk: Buffer): void => {
      try {
        if (length + chunk.length > maxBytes) throw new HttpError(413, `body larger than ${maxBytes} bytes`)
        budget.take(ip, chunk.length)
      } catch (error) {
        return finish(error)
      }
      length += chunk.length
      chunks.push(chunk)
    }
    const onEnd = (): void => finish(null)
    const onClose = (): void => finish(new HttpError(400, 'the request was cut off before its body ended'))
    req.on('data', onData)
    req.once('end', onEnd)
    req.once('error', finish)
    req.once('close', onClose)
  })
}
