/**
 * Node entry point: `import { SqliteStore } from 'petaldb/node'`. Importing it also makes
 * the `ws` package the replicas' default WebSocket (Node 20 has no global one).
 */
import WebSocket from 'ws'
import { setDefaultWebSocket, type WebSocketConstructor } from './websocket-link.js'

setDefaultWebSocket(WebSocket as unknown as WebSocketConstructor)

export { SqliteStore, type SqliteStoreOptions, type CommitInfo } from './sqlite-store.js'
