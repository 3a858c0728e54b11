/**
 * The small vocabulary of the relay's HTTP answers: an error carries its status and a
 * reason that is sent as JSON, so every route fails the same way.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'

/** An HTTP request ends with `status` and `{ "error": message }`. */
export class HttpError extends Error {
  override name = 'HttpError'
  constructor (readonly status: number, message: string) {
    super(message)
  }
}

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
 * The request body, at most `maxBytes` (413 beyond, without reading the rest). A body that
 * stalls is left to the server's request timeout.
 */
export function readBody (req: IncomingMessage, maxBytes: number): Promise<Uint8Array<ArrayBuffer>> {
  const declared = Number(req.headers['content-length'] ?? NaN)
  if (declared > maxBytes) return Promise.reject(new HttpError(413, `body larger than ${maxBytes} bytes`))
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let length = 0
    req.on('data', (chunk: Buffer) => {
      length += chunk.length
      if (length > maxBytes) {
        req.removeAllListeners('data')
        req.resume()
        reject(new HttpError(413, `body larger than ${maxBytes} bytes`))
        return
      }
      chunks.push(chunk)
    })
    req.once('end', () => resolve(new Uint8Array(Buffer.concat(chunks, length))))
    req.once('error', reject)
  })
}
