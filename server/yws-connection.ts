/**
 * Serves one stock y-websocket connection: `ws://host:port/<docId>`. Frames that arrive
 * while the document loads wait in order; every frame is decoded inside error handling,
 * and a bad one closes this connection only, before anything is applied or forwarded.
 */
import type { Logger } from 'pino'
import type { RawData, WebSocket } from 'ws'
import { ProtocolError, ownBytes } from '../shared/bytes.js'
import { CloseCode } from '../shared/close-codes.js'
import type { DocId } from '../shared/doc-id.js'
import { decodeYMessage } from '../shared/y-messages.js'
import type { DocumentRegistry } from './registry.js'
import type { DocPeer, RelayDocument } from './relay-document.js'

/** Frames accepted while the document is still loading; more is a misbehaving client. */
const MAX_FRAMES_BEFORE_LOAD = 1024

/** Closes `socket` with `code` and a reason trimmed to the 123 bytes a close frame allows. */
export function closeWith (socket: WebSocket, code: number, reason: string): void {
  const bytes = new TextEncoder().encode(reason)
  socket.close(code, bytes.length <= 123 ? reason : new TextDecoder().decode(bytes.slice(0, 120)) + '...')
}

/** Attaches `socket` to document `docId`; see the module comment. */
export function serveYwsConnection (socket: WebSocket, docId: DocId, registry: DocumentRegistry, log: Logger): void {
  let doc: RelayDocument | null = null
  let waiting: Uint8Array[] | null = []
  let open = true
  const peer: DocPeer = {
    send (message) {
      if (socket.readyState === socket.OPEN) socket.send(message)
    }
  }

  const handle = (frame: Uint8Array): void => {
    if (!open || doc === null) return
    try {
      doc.receive(peer, decodeYMessage(frame))
    } catch (error) {
      if (error instanceof ProtocolError) {
        log.info({ doc: docId, reason: error.message }, 'closing connection after a malformed message')
        closeWith(socket, CloseCode.badRequest, error.message)
      } else {
        log.error({ err: error, doc: docId }, 'error while handling a message')
        closeWith(socket, CloseCode.badRequest, 'message could not be processed')
      }
      detach()
    }
  }

  const detach = (): void => {
    if (!open) return
    open = false
    waiting = null
    if (doc !== null) doc.removePeer(peer)
    registry.release(docId)
  }

  socket.on('message', (data: RawData, isBinary: boolean) => {
    if (!open) return
    if (!isBinary) {
      closeWith(socket, CloseCode.unsupportedData, 'text frames are not part of the protocol')
      detach()
      return
    }
    const frame = ownBytes(toBytes(data))
    if (waiting === null) return handle(frame)
    if (waiting.length >= MAX_FRAMES_BEFORE_LOAD) {
      closeWith(socket, CloseCode.badRequest, 'too many messages before the document loaded')
      detach()
      return
    }
    waiting.push(frame)
  })
  socket.on('close', detach)
  socket.on('error', (error) => log.debug({ err: error, doc: docId }, 'socket error'))

  registry.acquire(docId).then(loaded => {
    if (!open) return
    doc = loaded
    doc.addPeer(peer)
    const queued = waiting ?? []
    waiting = null
    for (const frame of queued) handle(frame)
  }, (error: unknown) => {
    log.error({ err: error, doc: docId }, 'document failed to load; refusing connections to it')
    if (open) closeWith(socket, CloseCode.documentUnavailable, `document failed to load: ${(error as Error).message}`)
    open = false
    waiting = null
    registry.release(docId)
  })
}

function toBytes (data: RawData): Uint8Array {
  if (Array.isArray(data)) return Buffer.concat(data)
  return data instanceof ArrayBuffer ? new Uint8Array(data) : data
}
