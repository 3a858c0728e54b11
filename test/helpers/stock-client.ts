/** A stock y-websocket v3 provider on Node, as users run it. */
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'
import * as Y from 'yjs'
import { until } from './events.js'

export interface StockClient {
  doc: Y.Doc
  provider: WebsocketProvider
  text: Y.Text
  /** Resolves once the provider has synced with the relay. */
  synced(): Promise<void>
  /** Resolves once the text equals `expected`. */
  textIs(expected: string, timeoutMs?: number): Promise<void>
  destroy(): void
}

export function stockClient (url: string, docId: string, { params = {}, connect = true }: { params?: Record<string, string>, connect?: boolean } = {}): StockClient {
  const doc = new Y.Doc()
  const provider = new WebsocketProvider(url, docId, doc, { WebSocketPolyfill: WebSocket as never, disableBc: true, params, connect })
  const text = doc.getText('t')
  return {
    doc,
    provider,
    text,
    synced: () => until(`${docId} to sync`, cb => { provider.on('sync', cb); return () => provider.off('sync', cb) }, () => provider.synced),
    textIs: (expected, timeoutMs) => until(`${docId} text to be ${JSON.stringify(expected.slice(0, 40))} (is ${JSON.stringify(text.toString().slice(0, 40))})`,
      cb => { doc.on('update', cb); return () => doc.off('update', cb) }, () => text.toString() === expected, timeoutMs),
    destroy: () => { provider.destroy(); doc.destroy() }
  }
}
