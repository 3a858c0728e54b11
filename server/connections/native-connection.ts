/**
 * Serves one native (`petaldb.v1`) connection: a HELLO carrying the token, then any number
 * of documents opened, synced and closed over the same Link, with updates acknowledged by
 * sequence number once they are durable (and, in a cluster, on W replicas). The token can
 * be refreshed with AUTH without dropping the documents; every message is authorized.
 * See shared/wire/PROTOCOL.md.
 */
import type { Logger } from 'pino'
import { ProtocolError } from '../../shared/wire/bytes.js'
import { CloseCode } from '../../shared/wire/close-codes.js'
import type { DocId } from '../../shared/wire/doc-id.js'
import type { Link } from '../../shared/transport/link.js'
import type { ClusterMap, ClusterMember } from '../../shared/placement.js'
import { NATIVE_PROTOCOL_VERSION, decodeNativeMessage, encodeNativeMessage, type NativeMessage } from '../../shared/wire/native-messages.js'
import { AuthError, type Authenticator } from './auth.js'
import { ConnectionAuth } from './connection-auth.js'
import { HELLO_DEADLINE_MS, MAX_FRAMES_BEFORE_LOAD, closeForError } from './closing.js'
import { LimitError } from './limits.js'
import type { DocumentRegistry } from '../documents/registry.js'
import type { DocPeer, PeerCodec, RelayDocument } from '../documents/relay-document.js'

/** Native framing of broadcasts; one instance shared by every native connection. */
const nativeCodec: PeerCodec = {
  update: (docId, update) => encodeNativeMessage({ type: 'update', docId, seq: 0, update }),
  awareness: (docId, update) => encodeNativeMessage({ type: 'awareness', docId, update })
}

type DocMessage = Extract<NativeMessage, { type: 'update' | 'awareness' }>

interface OpenDoc {
  peer: DocPeer
  doc: RelayDocument | null
  /** Messages that arrived while the document was loading. */
  waiting: DocMessage[]
  /** Highest sequence number found durable and not yet acknowledged; 0 if none. */
  ackDue: number
}

/** Options of {@link serveNativeLink}. */
export interface NativeConnectionOptions {
  registry: DocumentRegistry
  log: Logger
  /** Sent to clients in WELCOME. */
  relayId: string
  /** Verifies tokens; null: the relay is open. */
  authenticator: Authenticator | null
  /** Documents one connection may have open. */
  maxDocs: number
  /** In a cluster: the map sent to clients, and where to redirect documents this relay does not replicate. */
  routing?: {
    map: ClusterMap
    /** The replica to send a client to, or null if this relay replicates `docId`. */
    redirectFor(docId: DocId): ClusterMember | null
    /** Resolves once enough other replicas committed `docId`'s updates (write quorum). */
    confirm(docId: DocId): Promise<void>
  }
}

/** Serves the native protocol on `link`; see the module comment. */
export function serveNativeLink (link: Link, options: NativeConnectionOptions): void {
  const { registry, log, relayId, routing } = options
  const docs = new Map<DocId, OpenDoc>()
  let state: 'hello' | 'verifying' | 'ready' | 'closed' = 'hello'
  let early: Uint8Array[] = []

  const send = (message: NativeMessage): void => {
    if (state !== 'closed') link.send(encodeNativeMessage(message))
  }
  const fail = (error: unknown): void => {
    if (state === 'closed') return
    closeForError(link, error, log, { protocol: 'native' })
    shutdown()
  }
  const auth = new ConnectionAuth(options.authenticator, fail)

  const release = (docId: DocId): void => {
    const open = docs.get(docId)
    if (open === undefined) return
    docs.delete(docId)
    open.doc?.removePeer(open.peer)
    registry.release(docId)
  }

  /** Refuses `docId` on this connection only. */
  const refuse = (docId: DocId, code: number, reason: string): void => {
    release(docId)
    send({ type: 'doc-error', docId, code, reason })
  }

  /**
   * Acknowledges `seq` for `open` with the next turn, together with every later number
   * found durable meanwhile: acknowledgements are cumulative, and one per commit is enough.
   */
  const acknowledge = (open: OpenDoc, docId: DocId, seq: number): void => {
    if (open.ackDue === 0) {
      setImmediate(() => {
        // Only if the document is still open on this connection: an ack after a close would confuse the client.
        if (docs.get(docId) === open) send({ type: 'ack', docId, seq: open.ackDue })
        open.ackDue = 0
      })
    }
    open.ackDue = Math.max(open.ackDue, seq)
  }

  const applyToDoc = (open: OpenDoc, doc: RelayDocument, message: DocMessage): void => {
    if (message.type === 'awareness') return doc.applyAwareness(open.peer, message.update)
    const { docId, seq } = message
    if (!auth.canWrite(docId)) return refuse(docId, CloseCode.forbidden, `read-only access to ${docId}: updates are refused`)
    const committed = doc.applyUpdate(message.update, open.peer)
    if (seq === 0) return
    const durable = routing === undefined ? committed : Promise.all([committed, routing.confirm(docId)])
    // Storage failures are logged by the document; the client keeps the update pending.
    durable.then(() => acknowledge(open, docId, seq), () => {})
  }

  const openDoc = (docId: DocId, stateVector: Uint8Array): void => {
    if (docs.has(docId)) throw new ProtocolError(`document ${docId} is already open`)
    if (!auth.canRead(docId)) return send({ type: 'doc-error', docId, code: CloseCode.forbidden, reason: `no access to ${docId}` })
    const replica = routing?.redirectFor(docId) ?? null
    if (replica !== null) return send({ type: 'redirect', docId, relayId: replica.id, url: replica.url })
    if (docs.size >= options.maxDocs) throw new LimitError(CloseCode.policyViolation, `more than ${options.maxDocs} documents open on one connection`)
    const open: OpenDoc = { peer: { codec: nativeCodec, send: message => { if (state !== 'closed') link.send(message) }, user: auth.user }, doc: null, waiting: [], ackDue: 0 }
    docs.set(docId, open)
    registry.acquire(docId).then(doc => {
      if (docs.get(docId) !== open) return
      try {
        const missing = doc.missingFor(stateVector)
        open.doc = doc
        doc.addPeer(open.peer)
        send({ type: 'sync', docId, stateVector: doc.stateVector(), update: missing })
        const awareness = doc.awarenessStates()
        if (awareness !== null) send({ type: 'awareness', docId, update: awareness })
        for (const message of open.waiting.splice(0)) applyToDoc(open, doc, message)
      } catch (error) {
        fail(error)
      }
    }, (error: unknown) => {
      log.error({ err: error, doc: docId }, 'document failed to load; refusing connections to it')
      if (docs.get(docId) !== open) return
      docs.delete(docId) // the failed load took its holders with it: nothing to release
      send({ type: 'doc-error', docId, code: CloseCode.documentUnavailable, reason: `document failed to load: ${(error as Error).message}` })
    })
  }

  /** A refreshed token may cover fewer documents: close those it no longer allows. */
  const reauthorize = (): void => {
    for (const docId of [...docs.keys()]) {
      if (!auth.canRead(docId)) refuse(docId, CloseCode.forbidden, `the new token does not allow ${docId}`)
    }
  }

  const receive = (message: NativeMessage): void => {
    switch (message.type) {
      case 'open':
        return openDoc(message.docId, message.stateVector)
      case 'close':
        return release(message.docId)
      case 'auth':
        auth.authenticate(message.token).then(reauthorize, fail)
        return
      case 'update':
      case 'awareness': {
        const open = docs.get(message.docId)
        // After a redirect or a refusal the client may still send a message or two for the document.
        if (open === undefined) return
        if (open.doc !== null) return applyToDoc(open, open.doc, message)
        if (open.waiting.length >= MAX_FRAMES_BEFORE_LOAD) throw new ProtocolError('too many messages before the document loaded')
        open.waiting.push(message)
        return
      }
      default:
        throw new ProtocolError(`unexpected ${message.type} message from a client`)
    }
  }

  const greet = (message: NativeMessage): void => {
    if (message.type !== 'hello') throw new ProtocolError('the first message must be hello')
    if (message.version !== NATIVE_PROTOCOL_VERSION) throw new ProtocolError(`unsupported protocol version ${message.version}`)
    state = 'verifying'
    auth.authenticate(message.token).then(() => {
      if (state !== 'verifying') return
      state = 'ready'
      send({ type: 'welcome', version: NATIVE_PROTOCOL_VERSION, relayId })
      if (routing !== undefined) send({ type: 'cluster', map: routing.map })
      const queued = early
      early = []
      for (const frame of queued) handle(frame)
    }, fail)
  }

  const handle = (frame: Uint8Array): void => {
    if (state === 'closed') return
    if (state === 'verifying') {
      if (early.length >= MAX_FRAMES_BEFORE_LOAD) return fail(new ProtocolError('too many messages before the token was verified'))
      early.push(frame)
      return
    }
    try {
      const message = decodeNativeMessage(frame)
      if (state === 'hello') greet(message)
      else receive(message)
    } catch (error) {
      fail(error)
    }
  }

  const shutdown = (): void => {
    if (state === 'closed') return
    state = 'closed'
    auth.dispose()
    for (const docId of [...docs.keys()]) release(docId)
  }

  // A connection that never says hello would otherwise be held open by keep-alive pings.
  const helloDeadline = setTimeout(() => { if (state === 'hello') fail(new AuthError(CloseCode.unauthorized, 'no hello in time')) }, HELLO_DEADLINE_MS)
  link.onMessage = handle
  link.onClose = () => {
    clearTimeout(helloDeadline)
    shutdown()
  }
}
