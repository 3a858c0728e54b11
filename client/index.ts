/**
 * PetalDB's isomorphic entry point: `import { Replica } from 'petaldb'`.
 * Stores: `MemoryStore` here, `SqliteStore` in `petaldb/node`, `IndexedDbStore` in `petaldb/browser`.
 */
export { Replica, type ReplicaOptions, type ReplicaEvents, type RelayStatusEvent, type RefusedEvent, type PeersEvent, type DeletedEvent } from './replica.js'
export type { LinkStatus } from './dialer.js'
export { DocHandle, type DocStatus, type DocHandleEvents } from './doc-handle.js'
export type { SessionStatus, Refusal } from './local-doc.js'
export { PetalError, ProtocolError, LimitError, AuthError, DocLoadError, DocDeletedError, StorageError, MovedError, RefusedError, ClosedError, UsageError, isRetryable } from '../shared/errors.js'
export type { WebRtcOptions, RtcPeerConnection } from './webrtc.js'
export { setDefaultWebSocket, type WebSocketConstructor } from '../shared/transport/websocket.js'
export { MemoryStore } from '../shared/storage/memory-store.js'
export type { DocStore, StoredDoc } from '../shared/storage/store.js'
export type { Link } from '../shared/transport/link.js'
export { parseDocId, InvalidDocIdError, type DocId } from '../shared/wire/doc-id.js'
export { CloseCode } from '../shared/wire/close-codes.js'
