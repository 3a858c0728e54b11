/**
 * Serves one stock y-websocket connection: `ws://host:port/<docId>`. Frames that arrive
 * while the document loads wait in order; every frame is decoded inside error handling,
 * and a bad one closes this connection only, before anything is applied or forwarded.
 * A read-only connection is not asked for its state (no relay step 1) and is closed with
 * 4403 if it sends any change.
 */
import type { Logger } from 'pino'
import { CloseCode } from '../../shared/wire/close-codes.js'
import type { DocId } from '../../shared/wire/doc-id.js'
import type { Link } from '../../shared/transport/link.js'
import { decodeYMessage, encodeAwarenessMessage, encodeSyncStep1, encodeSyncStep2, encodeSyncUpdate, type YMessage } from '../../shared/wire/y-messages.js'
import { AuthError } from './auth.js'
import type { ConnectionAuth } from './connection-auth.js'
import { closeForError, closeWith, MAX_FRAMES_BEFORE_LOAD } from './closing.js'
import type { DocumentRegistry } from '../documents/registry.js'
import type { DocPeer, PeerCodec, RelayDocument } from '../documents/relay-document.js'

/** y-websocket framing of broadcasts; one instance shared by every stock connection. */
const ywsCodec: PeerCodec = {
  update: (_docId, update) => encodeSyncUpdate(update),
  awareness: (_docId, update) => encodeAwarenessMessage(update)
}

/** The smallest Yjs update: no structs, empty delete set. */
const EMPTY_UPDATE_LENGTH = 2

function receive (doc: RelayDocument, peer: DocPeer, message: YMessage, writable: boolean): void {
  switch (message.type) {
    case 'sync-step1':
      peer.send(encodeSyncStep2(doc.missingFor(message.stateVector)))
      break
    case 'sync-step2':
    case 'sync-update':
      if (!writable) {
        if (message.update.length <= EMPTY_UPDATE_LENGTH) return
        throw new AuthError(CloseCode.forbidden, 'read-only access: updates are refused')
      }
      void doc.applyUpdate(message.update, peer).catch(() => {}) // storage failures are logged by the document
      break
    case 'awareness':
      doc.applyAwareness(peer, message.update)
      break
    case 'query-awareness':
      peer.send(encodeAwarenessMessage(doc.awarenessStates() ?? new Uint8Array([0])))
      break
    case 'auth-denied':
      // Only relays send this; ignore it from a client.
      break
  }
}

/** Attaches the connection `link` to document `docId` with the access `auth` grants; see the module comment. */
export function serveYwsConnection (link: Link, docId: DocId, registry: DocumentRegistry, log: Logger, auth: ConnectionAuth): void {
  let doc: RelayDocument | null = null
  let waiting: Uint8Array[] | null = []
  let open = true
  const writable = auth.canWrite(docId)
  const peer: DocPeer = {
    codec: ywsCodec,
    send (message) {
      if (open) link.send(message)
    },
    user: auth.user
  }

  const detach = (): void => {
    if (!open) return
    open = false
    waiting = null
    auth.dispose()
    if (doc !== null) doc.removePeer(peer)
    registry.release(docId)
  }

  const fail = (error: unknown): void => {
    closeForError(link, error, log, { doc: docId })
    detach()
  }
  auth.onExpired = fail

  const handle = (frame: Uint8Array): void => {
    if (!open || doc === null) return
    try {
      receive(doc, peer, decodeYMessage(frame), writable)
    } catch (error) {
      fail(error)
    }
  }

  link.onMessage = frame => {
    if (!open) return
    if (waiting === null) return handle(frame)
    if (waiting.length >= MAX_FRAMES_BEFORE_LOAD) {
      closeWith(link, CloseCode.badRequest, 'too many messages before the document loaded')
      detach()
      return
    }
    waiting.push(frame)
  }
  link.onClose = detach

  registry.acquire(docId).then(loaded => {
    if (!open) return
    doc = loaded
    doc.addPeer(peer)
    if (writable) peer.send(encodeSyncStep1(doc.stateVector()))
    const awareness = doc.awarenessStates()
    if (awareness !== null) peer.send(encodeAwarenessMessage(awareness))
    const queued = waiting ?? []
    waiting = null
    for (const frame of queued) handle(frame)
  }, (error: unknown) => {
    log.error({ err: error, doc: docId }, 'document failed to load; refusing connections to it')
    if (open) closeWith(link, CloseCode.documentUnavailable, `document failed to load: ${(error as Error).message}`)
    open = false // the failed load took its holders with it: nothing to release
    waiting = null
    auth.dispose()
  })
}
