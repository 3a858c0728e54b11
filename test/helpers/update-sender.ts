/** Sends updates to a relay as a stock client would, over a raw socket, and reports the relay's answer. */
import WebSocket from 'ws'
import { decodeYMessage, encodeSyncStep1, encodeSyncUpdate } from '../../shared/wire/y-messages.js'

/** What the relay did with updates: stored them, or closed the connection. */
export type Answer = 'stored' | { code: number, reason: string }

/**
 * Sends `updates` to document `docId` of the relay at `url` on a fresh socket. Resolves with
 * the code and reason the relay closes it with, or 'stored' once it answers a sync step 1
 * sent after them (it handles a connection's frames in order). Rejects after `timeoutMs`.
 */
export async function sendUpdates (url: string, docId: string, updates: Uint8Array[], timeoutMs = 10_000): Promise<Answer> {
  const ws = new WebSocket(`${url}/${docId}`, { maxPayload: 64 * 1024 * 1024 })
  ws.on('error', () => {})
  try {
    return await new Promise<Answer>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer from the relay within ${timeoutMs} ms`)), timeoutMs)
      ws.once('close', (code, reason) => { clearTimeout(timer); resolve({ code, reason: reason.toString() }) })
      ws.on('message', (data: Buffer) => {
        if (decodeYMessage(new Uint8Array(data)).type !== 'sync-step2') return
        clearTimeout(timer)
        resolve('stored')
      })
      ws.once('open', () => {
        for (const update of updates) ws.send(encodeSyncUpdate(update))
        ws.send(encodeSyncStep1(new Uint8Array([0])))
      })
    })
  } finally {
    ws.terminate()
  }
}
