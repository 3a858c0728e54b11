/**
 * Minimal wire-level clients for benchmarks: they speak just enough of each protocol to
 * sync and then hand over the updates they receive (the initial state included) without
 * applying them, so that the load generator is not the bottleneck. `yws` is the y-websocket protocol (PetalDB, reference
 * server), `hocuspocus` prefixes every message with the document name and authenticates
 * first, `bare` sends raw frames with no handshake.
 */
import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import WebSocket from 'ws'

export type Protocol = 'yws' | 'hocuspocus' | 'bare'

export interface WireClient {
  /** Resolves once the initial sync is done (at once for `bare`). */
  ready: Promise<void>
  /** Sends a Yjs update. */
  send(update: Uint8Array): void
  close(): void
}

const EMPTY_UPDATE = new Uint8Array([0, 0])
const EMPTY_STATE_VECTOR = new Uint8Array([0])

/** Connects to `docId` on `baseUrl`; `onUpdate` gets every update payload received. */
export function connectWire (protocol: Protocol, baseUrl: string, docId: string, onUpdate: (update: Uint8Array) => void = () => {}): WireClient {
  const ws = new WebSocket(`${baseUrl}/${docId}`)
  ws.binaryType = 'nodebuffer'
  const prefix = (encoder: encoding.Encoder): void => { if (protocol === 'hocuspocus') encoding.writeVarString(encoder, docId) }
  const sync = (subtype: number, payload: Uint8Array): Uint8Array => encoding.encode(encoder => {
    prefix(encoder)
    encoding.writeVarUint(encoder, 0)
    encoding.writeVarUint(encoder, subtype)
    encoding.writeVarUint8Array(encoder, payload)
  })
  let markReady!: () => void
  const ready = new Promise<void>(resolve => { markReady = resolve })
  ws.on('error', () => {})
  ws.on('open', () => {
    if (protocol === 'bare') return markReady()
    if (protocol === 'hocuspocus') {
      ws.send(encoding.encode(encoder => {
        prefix(encoder)
        encoding.writeVarUint(encoder, 2) // auth
        encoding.writeVarUint(encoder, 0) // token
        encoding.writeVarString(encoder, '')
        encoding.writeVarString(encoder, '4.8.0')
      }))
      return
    }
    ws.send(sync(0, EMPTY_STATE_VECTOR))
  })
  ws.on('message', (data: Buffer) => {
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
    if (protocol === 'bare') return onUpdate(bytes)
    const decoder = decoding.createDecoder(bytes)
    if (protocol === 'hocuspocus') decoding.readVarString(decoder)
    const type = decoding.readVarUint(decoder)
    if (protocol === 'hocuspocus' && type === 2) {
      // Authenticated: start syncing.
      ws.send(sync(0, EMPTY_STATE_VECTOR))
      return
    }
    if (type !== 0) return
    const subtype = decoding.readVarUint(decoder)
    const payload = decoding.readVarUint8Array(decoder)
    if (subtype === 0) return ws.send(sync(1, EMPTY_UPDATE))
    // A step 2 carries the server's state: an update like any other, and the end of the sync.
    onUpdate(payload)
    if (subtype === 1) markReady()
  })
  return {
    ready,
    send: update => ws.send(protocol === 'bare' ? update : sync(2, update)),
    close: () => ws.close()
  }
}
