/**
 * Node entry point: `import { SqliteStore } from 'petaldb/node'`. Importing it also makes
 * the `ws` package the replicas' default WebSocket (Node 20 has no global one).
 */
import type WebSocket from 'ws'
import { requirePeer } from '../shared/node-peers.js'
import { setDefaultWebSocket, type WebSocketConstructor } from '../shared/transport/websocket.js'

setDefaultWebSocket(requirePeer<typeof WebSocket>('ws', 'petaldb/node') as unknown as WebSocketConstructor)

export { SqliteStore, type SqliteStoreOptions, type CommitInfo } from '../shared/storage/sqlite-store.js'
export { listenForPeers, type ListenForPeersOptions, type PeerServer } from './listen-for-peers.js'
