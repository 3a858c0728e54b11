/**
 * Serves an admitted stock y-websocket client (see `listener.ts`), the same on a relay and
 * on a replica that listens for peers: the session logic of `shared/sync/yws-link.ts` with
 * the access the client's token grants, until the token expires. Every frame is decoded
 * inside error handling; a bad one closes this connection only, before anything is
 * applied or forwarded.
 */
import type { Link } from '../transport/link.js'
import type { Served } from '../sync/connection.js'
import { serveYwsLink } from '../sync/yws-link.js'
import type { TokenVerifier } from './auth.js'
import { closeForError } from './closing.js'
import { ConnectionAuth } from './connection-auth.js'
import type { StockClient } from './listener.js'
import type { Log } from './log.js'

/** Serves `client`'s document from `served` on `link`; see the module comment. */
export function acceptStock (link: Link, client: StockClient, served: Served, authenticator: TokenVerifier | null, log: Log): void {
  const auth = new ConnectionAuth(authenticator, () => {})
  auth.adopt(client.grant)
  const session = serveYwsLink(link, client.docId, served, {
    mayWrite: () => auth.canWrite(client.docId),
    ...(auth.user === undefined ? {} : { user: auth.user }),
    onError: error => closeForError(link, error, log, { doc: client.docId })
  })
  auth.onExpired = error => session.options.onError(error)
  const onClose = link.onClose
  link.onClose = (code, reason) => {
    auth.dispose()
    onClose(code, reason)
  }
}
