/**
 * Serves a stock y-websocket client whose document this relay does not replicate, by
 * passing its frames through to a replica (`ws://replica/<docId>`) and back. The replica
 * validates and stores; this relay only relays. If no replica can be reached the client is
 * closed with 4502, which stock clients treat as "retry".
 */
import type { Logger } from 'pino'
import WebSocket from 'ws'
import { CloseCode } from '../../shared/wire/close-codes.js'
import type { DocId } from '../../shared/wire/doc-id.js'
import type { Link } from '../../shared/transport/link.js'
import type { ClusterMember } from '../../shared/placement.js'
import { closeWith, MAX_FRAMES_BEFORE_LOAD } from '../../shared/listen/closing.js'

/** Connects `link` to the first replica in `replicas` that accepts; `query` is passed on (tokens). */
export function proxyYwsConnection (link: Link, docId: DocId, query: string, replicas: ClusterMember[], log: Logger): void {
  let upstream: WebSocket | null = null
  let waiting: Uint8Array[] = []
  let open = true

  link.onMessage = frame => {
    if (upstream?.readyState === WebSocket.OPEN) return upstream.send(frame)
    if (waiting.length >= MAX_FRAMES_BEFORE_LOAD) return closeWith(link, CloseCode.badRequest, 'too many messages before the replica answered')
    waiting.push(frame)
  }
  link.onClose = () => {
    open = false
    upstream?.close()
  }

  const tryReplica = (index: number): void => {
    if (!open) return
    const replica = replicas[index]
    if (replica === undefined) {
      closeWith(link, CloseCode.upstreamUnavailable, 'no replica of the document is reachable')
      return
    }
    const socket = new WebSocket(`${replica.url}/${encodeURIComponent(docId).replace(/%2F/g, '/')}${query}`)
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
    socket.on('error', error => log.debug({ err: error, doc: docId, replica: replica.id }, 'proxy upstream error'))
    socket.on('close', (code, reason) => {
      if (!connected) return tryReplica(index + 1)
      // Pass the replica's verdict on; a dropped replica becomes "retry".
      if (open) closeWith(link, code >= 4000 ? code : CloseCode.upstreamUnavailable, reason.toString() || 'the replica closed the connection')
    })
  }
  tryReplica(0)
}
