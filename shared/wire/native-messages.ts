/**
 * Codec for PetalDB's native protocol (WebSocket subprotocol `petaldb.v3`); the byte
 * grammar is in PROTOCOL.md beside this file. One message per frame; many documents
 * share one connection, each message naming its document. A Yjs payload is always the
 * last field, so that it ends where the frame ends.
 */
import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import { decodeExactly, readBytes, readString, readVarUint } from './bytes.js'
import { docIdProblem, type DocId } from './doc-id.js'
import type { ClusterMap } from '../placement.js'
import { ProtocolError } from '../errors.js'

/**
 * The WebSocket subprotocol name, which carries the protocol version. Every native link
 * speaks it: replica to relay, relay to relay, replica to replica.
 */
export const NATIVE_SUBPROTOCOL = 'petaldb.v3'

/** Protocol version sent in HELLO and WELCOME. */
export const NATIVE_PROTOCOL_VERSION = 3

/** What a peer says about itself in HELLO and WELCOME. */
export interface PeerInfo {
  /** A stable id: a relay's id, or a replica's (random, kept for the replica's lifetime). */
  peerId: string
  /** Whether the peer acknowledges updates only once they are durable on a relay (relays do). */
  isRelay: boolean
}

const RELAY_FLAG = 1
const WRITABLE_FLAG = 1
const LAST_FLAG = 1

/** Message tags of the native protocol. */
export const NativeType = {
  hello: 0,
  welcome: 1,
  open: 2,
  sync: 3,
  update: 4,
  ack: 5,
  awareness: 6,
  close: 7,
  docError: 8,
  cluster: 9,
  redirect: 10,
  auth: 11,
  signal: 12,
  tombstones: 13
} as const

/** A deleted document, as relays of a cluster tell each other. */
export interface TombstoneEntry {
  docId: DocId
  /** When it was deleted, in milliseconds since the epoch. */
  deletedAt: number
}

/** A decoded native protocol message. */
export type NativeMessage =
  | { type: 'hello', version: number, peer: PeerInfo, token: string }
  | { type: 'welcome', version: number, peer: PeerInfo }
  | { type: 'open', docId: DocId, stateVector: Uint8Array }
  | { type: 'sync', docId: DocId, stateVector: Uint8Array, update: Uint8Array }
  | { type: 'update', docId: DocId, seq: number, update: Uint8Array }
  | { type: 'ack', docId: DocId, seq: number }
  | { type: 'awareness', docId: DocId, update: Uint8Array }
  | { type: 'close', docId: DocId }
  | { type: 'doc-error', docId: DocId, code: number, reason: string }
  | { type: 'cluster', map: ClusterMap }
  | { type: 'redirect', docId: DocId, relayId: string, url: string }
  | { type: 'auth', token: string }
  /**
   * WebRTC signaling, relayed: from a client, `peerId` is the receiver ('' for every other
   * client of the document) and `writable` and `user` are ignored; from a relay, `peerId` is
   * the sender's id as the relay bound it to the sender's connection, `writable` says whether
   * the sender may write the document, and `user` is its token's subject ('' for none).
   */
  | { type: 'signal', docId: DocId, peerId: string, writable: boolean, user: string, payload: Uint8Array }
  /**
   * Relay to relay: deleted documents. When a link comes up each side sends every tombstone
   * it holds, in one or more of these, `last` set on the final one; a deletion made later
   * is sent alone, `last` unset.
   */
  | { type: 'tombstones', last: boolean, entries: TombstoneEntry[] }

function readDocId (decoder: decoding.Decoder): DocId {
  const id = readString(decoder)
  const problem = docIdProblem(id)
  if (problem !== null) throw new ProtocolError(problem)
  return id as DocId
}

/** Decodes one native message; throws {@link ProtocolError} if it is malformed. */
export function decodeNativeMessage (bytes: Uint8Array): NativeMessage {
  return decodeExactly(bytes, readMessage)
}

function readMessage (decoder: decoding.Decoder): NativeMessage {
  const tag = readVarUint(decoder)
  switch (tag) {
    case NativeType.hello:
      return { type: 'hello', version: readVarUint(decoder), peer: readPeer(decoder), token: readString(decoder) }
    case NativeType.welcome:
      return { type: 'welcome', version: readVarUint(decoder), peer: readPeer(decoder) }
    case NativeType.open:
      return { type: 'open', docId: readDocId(decoder), stateVector: readBytes(decoder) }
    case NativeType.sync:
      return { type: 'sync', docId: readDocId(decoder), stateVector: readBytes(decoder), update: readBytes(decoder) }
    case NativeType.update:
      return { type: 'update', docId: readDocId(decoder), seq: readVarUint(decoder), update: readBytes(decoder) }
    case NativeType.ack:
      return { type: 'ack', docId: readDocId(decoder), seq: readVarUint(decoder) }
    case NativeType.awareness:
      return { type: 'awareness', docId: readDocId(decoder), update: readBytes(decoder) }
    case NativeType.close:
      return { type: 'close', docId: readDocId(decoder) }
    case NativeType.docError:
      return { type: 'doc-error', docId: readDocId(decoder), code: readVarUint(decoder), reason: readString(decoder) }
    case NativeType.cluster:
      return { type: 'cluster', map: readClusterMap(decoder) }
    case NativeType.redirect:
      return { type: 'redirect', docId: readDocId(decoder), relayId: readString(decoder), url: readString(decoder) }
    case NativeType.auth:
      return { type: 'auth', token: readString(decoder) }
    case NativeType.signal:
      return { type: 'signal', docId: readDocId(decoder), peerId: readSignalPeer(decoder), writable: (readVarUint(decoder) & WRITABLE_FLAG) !== 0, user: readString(decoder), payload: readBytes(decoder) }
    case NativeType.tombstones:
      return { type: 'tombstones', last: (readVarUint(decoder) & LAST_FLAG) !== 0, entries: readTombstones(decoder) }
    default:
      throw new ProtocolError(`unknown message type ${tag}`)
  }
}

/** Characters a peer id may have at most. */
export const MAX_PEER_ID_LENGTH = 128

/** Why `peerId` cannot name a peer (null if it can): it is 1 to {@link MAX_PEER_ID_LENGTH} characters, none a control character. */
export function peerIdProblem (peerId: string): string | null {
  if (peerId.length === 0 || peerId.length > MAX_PEER_ID_LENGTH) return `a peer id has 1 to ${MAX_PEER_ID_LENGTH} characters`
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(peerId)) return 'a peer id has no control characters'
  return null
}

function readPeer (decoder: decoding.Decoder): PeerInfo {
  const peerId = readString(decoder)
  const problem = peerIdProblem(peerId)
  if (problem !== null) throw new ProtocolError(problem)
  const flags = readVarUint(decoder)
  return { peerId, isRelay: (flags & RELAY_FLAG) !== 0 }
}

/** A signal's peer id: '' (every client of the document) or a peer id. */
function readSignalPeer (decoder: decoding.Decoder): string {
  const peerId = readString(decoder)
  const problem = peerId === '' ? null : peerIdProblem(peerId)
  if (problem !== null) throw new ProtocolError(problem)
  return peerId
}

function writePeer (encoder: encoding.Encoder, peer: PeerInfo): void {
  encoding.writeVarString(encoder, peer.peerId)
  encoding.writeVarUint(encoder, peer.isRelay ? RELAY_FLAG : 0)
}

function readClusterMap (decoder: decoding.Decoder): ClusterMap {
  const copies = readVarUint(decoder)
  const count = readVarUint(decoder)
  if (count > decoder.arr.length) throw new ProtocolError('cluster map claims more members than it has bytes')
  const members = []
  for (let i = 0; i < count; i++) members.push({ id: readString(decoder), url: readString(decoder) })
  return { copies, members }
}

function readTombstones (decoder: decoding.Decoder): TombstoneEntry[] {
  const count = readVarUint(decoder)
  if (count > decoder.arr.length) throw new ProtocolError('tombstones claim more entries than they have bytes')
  const entries: TombstoneEntry[] = []
  for (let i = 0; i < count; i++) entries.push({ docId: readDocId(decoder), deletedAt: readVarUint(decoder) })
  return entries
}

const TAGS: Record<NativeMessage['type'], number> = {
  hello: NativeType.hello,
  welcome: NativeType.welcome,
  open: NativeType.open,
  sync: NativeType.sync,
  update: NativeType.update,
  ack: NativeType.ack,
  awareness: NativeType.awareness,
  close: NativeType.close,
  'doc-error': NativeType.docError,
  cluster: NativeType.cluster,
  redirect: NativeType.redirect,
  auth: NativeType.auth,
  signal: NativeType.signal,
  tombstones: NativeType.tombstones
}

/** Encodes one native message. */
export function encodeNativeMessage (message: NativeMessage): Uint8Array {
  return encoding.encode(encoder => {
    encoding.writeVarUint(encoder, TAGS[message.type])
    switch (message.type) {
      case 'hello':
        encoding.writeVarUint(encoder, message.version)
        writePeer(encoder, message.peer)
        encoding.writeVarString(encoder, message.token)
        break
      case 'welcome':
        encoding.writeVarUint(encoder, message.version)
        writePeer(encoder, message.peer)
        break
      case 'open':
        encoding.writeVarString(encoder, message.docId)
        encoding.writeVarUint8Array(encoder, message.stateVector)
        break
      case 'sync':
        encoding.writeVarString(encoder, message.docId)
        encoding.writeVarUint8Array(encoder, message.stateVector)
        encoding.writeVarUint8Array(encoder, message.update)
        break
      case 'update':
        encoding.writeVarString(encoder, message.docId)
        encoding.writeVarUint(encoder, message.seq)
        encoding.writeVarUint8Array(encoder, message.update)
        break
      case 'ack':
        encoding.writeVarString(encoder, message.docId)
        encoding.writeVarUint(encoder, message.seq)
        break
      case 'awareness':
        encoding.writeVarString(encoder, message.docId)
        encoding.writeVarUint8Array(encoder, message.update)
        break
      case 'close':
        encoding.writeVarString(encoder, message.docId)
        break
      case 'doc-error':
        encoding.writeVarString(encoder, message.docId)
        encoding.writeVarUint(encoder, message.code)
        encoding.writeVarString(encoder, message.reason)
        break
      case 'cluster':
        encoding.writeVarUint(encoder, message.map.copies)
        encoding.writeVarUint(encoder, message.map.members.length)
        for (const member of message.map.members) {
          encoding.writeVarString(encoder, member.id)
          encoding.writeVarString(encoder, member.url)
        }
        break
      case 'redirect':
        encoding.writeVarString(encoder, message.docId)
        encoding.writeVarString(encoder, message.relayId)
        encoding.writeVarString(encoder, message.url)
        break
      case 'auth':
        encoding.writeVarString(encoder, message.token)
        break
      case 'signal':
        encoding.writeVarString(encoder, message.docId)
        encoding.writeVarString(encoder, message.peerId)
        encoding.writeVarUint(encoder, message.writable ? WRITABLE_FLAG : 0)
        encoding.writeVarString(encoder, message.user)
        encoding.writeVarUint8Array(encoder, message.payload)
        break
      case 'tombstones':
        encoding.writeVarUint(encoder, message.last ? LAST_FLAG : 0)
        encoding.writeVarUint(encoder, message.entries.length)
        for (const entry of message.entries) {
          encoding.writeVarString(encoder, entry.docId)
          encoding.writeVarUint(encoder, entry.deletedAt)
        }
        break
    }
  })
}
