/**
 * Serves one stock y-websocket connection to a relay document: `ws://host:port/<docId>`,
 * with the access the connection's token grants (see `shared/sync/yws-link.ts`). Every
 * frame is decoded inside error handling; a bad one closes this connection only, before
 * anything is applied or forwarded.
 */
import type { Logger } from 'pino'
import type { DocId } from '../../shared/wire/doc-id.js'
import type { Link } from '../../shared/transport/link.js'
import { serveYwsLink } from '../../shared/sync/yws-link.js'
import type { ConnectionAuth } from './connection-auth.js'
import { closeForError } from './closing.js'
import type { DocumentRegistry } from '../documents/registry.js'

/** Attaches the connection `link` to document `docId` with the access `auth` grants. */
export function serveYwsConnection (link: Link, docId: DocId, registry: DocumentRegistry, log: Logger, auth: ConnectionAuth): void {
  const host = registry.acquire(docId)
  host.catch((error: unknown) => log.error({ err: error, doc: docId }, 'document failed to load; refusing connections to it'))
  const session = serveYwsLink(link, docId, { host, release: () => registry.release(docId) }, {
    mayWrite: () => auth.canWrite(docId),
    ...(auth.user === undefined ? {} : { user: auth.user }),
    onError: error => closeForError(link, error, log, { doc: docId })
  })
  auth.onExpired = error => session.options.onError(error)
  const onClose = link.onClose
  link.onClose = (code, reason) => {
    auth.dispose()
    onClose(code, reason)
  }
}
