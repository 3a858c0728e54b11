/**
 * Serves one document to a stock y-websocket client over `link` (`ws://host/<docId>`),
 * with the same session logic as every native peer and y-websocket framing. The server is
 * both answerer (the client's step 1 gets a step 2) and opener: it sends its own step 1
 * to a client that may write, whose step 2 brings what the client had offline. A client
 * that may only read is not asked, and is refused (4403) if it sends a change anyway.
 * Frames that arrive while the document loads wait, in order.
 */
import { decodeYMessage } from '../wire/y-messages.js'
import type { DocId } from '../wire/doc-id.js'
import type { Link } from '../transport/link.js'
import type { Served } from './connection.js'
import { ywsFraming, ywsInput } from './framing.js'
import { SyncSession } from './session.js'

/** Options of {@link serveYwsLink}. */
export interface YwsLinkOptions {
  /** Whether the client may change the document. */
  mayWrite: () => boolean
  /** The client's authenticated user, stamped on its presence. */
  user?: string
  /** A frame failed, or the document failed to load: close the link with the error's code. */
  onError: (error: unknown) => void
}

/** Serves `docId` to the client on `link`; see the module comment. */
export function serveYwsLink (link: Link, docId: DocId, served: Served, options: YwsLinkOptions): SyncSession {
  let released = false
  const release = (): void => {
    if (released) return
    released = true
    served.release?.()
  }
  const session = new SyncSession({
    docId,
    peer: { peerId: '', durable: false },
    framing: ywsFraming,
    send: frame => link.send(frame),
    charge: bytes => link.charge?.(bytes),
    mayWrite: options.mayWrite,
    liveOnBind: true,
    ...(options.user === undefined ? {} : { user: options.user }),
    onError: error => {
      options.onError(error)
      session.end()
      release()
    }
  })
  link.onMessage = frame => {
    if (session.ended) return
    let input
    try {
      input = ywsInput(decodeYMessage(frame))
    } catch (error) {
      session.options.onError(error)
      return
    }
    if (input !== null) session.receive(input)
  }
  link.onClose = () => {
    session.end()
    release()
  }
  if (options.mayWrite()) session.open()
  if (served.host instanceof Promise) {
    served.host.then(host => session.bind(host), (error: unknown) => {
      released = true // a failed load holds nothing
      options.onError(error)
      session.end()
    })
  } else {
    session.bind(served.host)
  }
  return session
}
