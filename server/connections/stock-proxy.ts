/**
 * Serves a stock y-websocket client whose document another relay serves (a home of it in a
 * cluster, the relay holding its claim on PostgreSQL), by passing its frames through to that
 * relay (`ws://home/<docId>`) and back. The home validates and stores; this relay only relays. If no home can be reached the client is
 * closed with 4502, which stock clients treat as "retry".
 */
import type { Logger } from 'pino'
import type WebSocketType from 'ws'
import { requirePeer } from '../../shared/node-peers.js'
import { CloseCode } from '../../shared/wire/close-codes.js'
import type { DocId } from '../../shared/wire/doc-id.js'
import type { Link } from '../../shared/transport/link.js'
import type { ClusterMember } from '../../shared/placement.js'
import { closeWith } from '../../shared/listen/closing.js'
import { MAX_EARLY_MESSAGES } from '../../shared/sync/session.js'

/** Connects `link` to the first of `homes` that accepts; `query` is passed on (tokens). */
export function proxyStockConnection (link: Link, docId: DocId, query: string, homes: ClusterMember[], logger: Logger): void {
  const WebSocket = requirePeer<typeof WebSocketType>('ws', 'Passing stock clients through')
  let upstream: WebSocketType | null = null
  let waiting: Uint8Array[] = []
  let open = true

  link.onMessage = frame => {
    if (upstream?.readyState === WebSocket.OPEN) return upstream.send(frame)
    if (waiting.length >= MAX_EARLY_MESSAGES) return closeWith(link, CloseCode.badRequest, 'too many messages before the home answered')
    waiting.push(frame)
  }
  link.onClose = () => {
    open = false
    upstream?.close()
  }

  const tryHome = (index: number): void => {
    if (!open) return
    const home = homes[index]
    if (home === undefined) {
      closeWith(link, CloseCode.upstreamUnavailable, 'no home of the document is reachable')
      return
    }
    const socket = new WebSocket(`${home.url}/${encodeURIComponent(docId).replace(/%2F/g, '/')}${query}`)
    socket.binaryType = 'nodebuffer'
    let connected = false
    socket.on('open', () => {
      connected = true
      if (!open) return socket.close()
      upstream = socket
      for (const frame of waiting) socket.send(frame)
      waiting = []
    })
    socket.on('message', (data: Buffer) => link.send(new Uint8Array(data)))
    socket.on('error', error => logger.debug({ err: error, doc: docId, home: home.id }, 'proxy upstream error'))
    socket.on('close', (code, reason) => {
      if (!connected) return tryHome(index + 1)
      // Pass the home's verdict on; a dropped home becomes "retry".
      if (open) closeWith(link, code >= 4000 ? code : CloseCode.upstreamUnavailable, reason.toString() || 'the home closed the connection')
    })
  }
  tryHome(0)
}
