/**
 * Passes WebRTC signals between the clients of a document on this relay. Identity is the
 * relay's word: a signal goes out stamped with the id its sender's connection is bound to
 * (see `shared/listen/peer-ids.ts`), whether the sender's token may write the document, and
 * the token's subject. Only a client that has the document open here may signal about it,
 * and only to clients that have it open here and may read it: that is what makes a direct
 * link between them as authorized as their links to the relay. A signal names one receiver,
 * by id, or is a `hi` to every such client; every copy delivered is charged to the sender.
 */
import type { NativeMessage } from '../../shared/wire/native-messages.js'
import { encodeNativeMessage } from '../../shared/wire/native-messages.js'
import type { DocId } from '../../shared/wire/doc-id.js'
import type { PeerConnection } from '../../shared/sync/connection.js'
import type { SyncSession } from '../../shared/sync/session.js'
import type { BoundClient, PeerIds } from '../../shared/listen/peer-ids.js'
import { readSignalPayload } from '../../shared/validation/signal-payload.js'
import type { DocumentRegistry } from '../documents/registry.js'
import { SignalBudget } from './signal-budget.js'

/** The signaling budget of each client connection that signaled. */
const budgets = new WeakMap<PeerConnection, SignalBudget>()

/**
 * Passes `message` from `from` on; see the module comment. Throws a ProtocolError (a
 * malformed payload, a broadcast that is not a `hi`) or a LimitError (over the signaling
 * budget), for the caller to close the sender's connection; a signal with no receiver is dropped.
 */
export function relaySignal (registry: DocumentRegistry, peerIds: PeerIds, message: Extract<NativeMessage, { type: 'signal' }>, from: BoundClient): void {
  const broadcast = message.peerId === ''
  readSignalPayload(message.payload, broadcast)
  const { docId } = message
  // A signal may cross the close of its document in flight: dropped, like an update would be.
  if (from.connection.session(docId) === null) return
  const receivers = broadcast ? readersOf(registry, peerIds, docId, from) : addressee(peerIds.get(message.peerId), docId, from)
  if (receivers.length === 0) return
  const frame = encodeNativeMessage({ type: 'signal', docId, peerId: from.peerId, writable: from.auth.canWrite(docId), user: from.auth.user ?? '', payload: message.payload })
  const bytes = frame.length * receivers.length
  let budget = budgets.get(from.connection)
  if (budget === undefined) budgets.set(from.connection, budget = new SignalBudget())
  budget.take(bytes)
  from.connection.charge(bytes)
  for (const session of receivers) session.options.send(frame)
}

/** `client`'s session of `docId`, if it has one and may read the document. */
function readerSession (client: BoundClient, docId: DocId): SyncSession | null {
  return client.auth.canRead(docId) ? client.connection.session(docId) : null
}

/** The session of the client `to` that a signal addressed to it goes to: none for no client, or the sender. */
function addressee (to: BoundClient | undefined, docId: DocId, from: BoundClient): SyncSession[] {
  const session = to === undefined || to === from ? null : readerSession(to, docId)
  return session === null ? [] : [session]
}

/** The sessions of the document's other clients here that may read it: relay links and stock clients have no bound id. */
function readersOf (registry: DocumentRegistry, peerIds: PeerIds, docId: DocId, from: BoundClient): SyncSession[] {
  const doc = registry.peek(docId)
  if (doc === null) return []
  const sessions: SyncSession[] = []
  for (const session of doc.peers) {
    const client = peerIds.get(session.peer.peerId)
    if (client !== undefined && client !== from && readerSession(client, docId) === session) sessions.push(session)
  }
  return sessions
}
