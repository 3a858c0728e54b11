/**
 * Serves one native (`petaldb.v1`) connection: a HELLO, then any number of documents
 * opened, synced and closed over the same Link, with updates acknowledged by sequence
 * number once they are durable. See shared/PROTOCOL.md.
 */
import type { Logger } from 'pino'
import { ProtocolError } from '../shared/bytes.js'
import { CloseCode } from '../shared/close-codes.js'
import type { DocId } from '../shared/doc-id.js'
import type { Link } from '../shared/link.js'
import type { ClusterMap, ClusterMember } from '../shared/placement.js'
import { NATIVE_PROTOCOL_VERSION, decodeNativeMessage, encodeNativeMessage, type NativeMessage } from '../shared/native-messages.js'
import { MAX_FRAMES_BEFORE_LOAD, closeForError } from './connections.js'
import type { DocumentRegistry } from './registry.js'
import type { DocPeer, PeerCodec, RelayDocument } from './relay-document.js'

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
}

/** Options of {@link serveNativeLink}. */
export interface NativeConnectionOptions {
  registry: DocumentRegistry
  log: Logger
  /** Sent to clients in WELCOME. */
  relayId: string
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
export function serveNativeLink (link: Link, { registry, log, relayId, routing }: NativeConnectionOptions): void {
  const docs = new Map<DocId, OpenDoc>()
  let greeted = false
  let open = true

  const send = (message: NativeMessage): void => {
    if (open) link.send(encodeNativeMessage(message))
  }

  const release = (docId: DocId): void => {
    const state = docs.get(docId)
    if (state === undefined) return
    docs.delete(docId)
    state.doc?.removePeer(state.peer)
    registry.release(docId)
  }

  const applyToDoc = (doc: RelayDocument, peer: DocPeer, message: DocMessage): void => {
    if (message.type === 'awareness') return doc.applyAwareness(peer, message.update)
    const committed = doc.applyUpdate(message.update, peer)
    const { docId, seq } = message
    if (seq === 0) return
    const durable = routing === undefined ? committed : Promise.all([committed, routing.confirm(docId)])
    durable.then(() => {
      // Only if the document is still open on this connection: an ack after a close would confuse the client.
      if (docs.get(docId)?.doc === doc) send({ type: 'ack', docId, seq })
    }, () => {}) // storage failures are logged by the document; the client keeps the update pending
  }

  const openDoc = (docId: DocId, stateVector: Uint8Array): void => {
    if (docs.has(docId)) throw new ProtocolError(`document ${docId} is already open`)
    const replica = routing?.redirectFor(docId) ?? null
    if (replica !== null) {
      send({ type: 'redirect', docId, relayId: replica.id, url: replica.url })
      return
    }
    const state: OpenDoc = { peer: { codec: nativeCodec, send: message => { if (open) link.send(message) } }, doc: null, waiting: [] }
    docs.set(docId, state)
    registry.acquire(docId).then(doc => {
      if (docs.get(docId) !== state) return
      try {
        const missing = doc.missingFor(stateVector)
        state.doc = doc
        doc.addPeer(state.peer)
        send({ type: 'sync', docId, stateVector: doc.stateVector(), update: missing })
        const awareness = doc.awarenessStates()
        if (awareness !== null) send({ type: 'awareness', docId, update: awareness })
        for (const message of state.waiting.splice(0)) applyToDoc(doc, state.peer, message)
      } catch (error) {
        fail(error)
      }
    }, (error: unknown) => {
      log.error({ err: error, doc: docId }, 'document failed to load; refusing connections to it')
      if (docs.get(docId) !== state) return
      docs.delete(docId)
      send({ type: 'doc-error', docId, code: CloseCode.documentUnavailable, reason: `document failed to load: ${(error as Error).message}` })
    })
  }

  const receive = (message: NativeMessage): void => {
    if (!greeted) {
      if (message.type !== 'hello') throw new ProtocolError('the first message must be hello')
      if (message.version !== NATIVE_PROTOCOL_VERSION) throw new ProtocolError(`unsupported protocol version ${message.version}`)
      greeted = true
      send({ type: 'welcome', version: NATIVE_PROTOCOL_VERSION, relayId })
      if (routing !== undefined) send({ type: 'cluster', map: routing.map })
      return
    }
    switch (message.type) {
      case 'open':
        return openDoc(message.docId, message.stateVector)
      case 'close':
        return release(message.docId)
      case 'update':
      case 'awareness': {
        const state = docs.get(message.docId)
        // After a redirect the client may still send a message or two for the document.
        if (state === undefined && routing?.redirectFor(message.docId) != null) return
        if (state === undefined) throw new ProtocolError(`document ${message.docId} is not open`)
        if (state.doc !== null) return applyToDoc(state.doc, state.peer, message)
        if (state.waiting.length >= MAX_FRAMES_BEFORE_LOAD) throw new ProtocolError('too many messages before the document loaded')
        state.waiting.push(message)
        return
      }
      default:
        throw new ProtocolError(`unexpected ${message.type} message from a client`)
    }
  }

  const fail = (error: unknown): void => {
    if (!open) return
    closeForError(link, error, log, { protocol: 'native' })
    shutdown()
  }

  const shutdown = (): void => {
    if (!open) return
    open = false
    for (const docId of [...docs.keys()]) release(docId)
  }

  link.onMessage = frame => {
    if (!open) return
    try {
      receive(decodeNativeMessage(frame))
    } catch (error) {
      fail(error)
    }
  }
  link.onClose = shutdown
}
