/**
 * Document lifecycle on the relay: load before the first sync, one load for concurrent
 * openers, eviction when idle, and refusal (never replacement) of a document that fails
 * to load.
 */
import { afterEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import * as Y from 'yjs'
import { parseDocId, type DocId } from '../../shared/wire/doc-id.js'
import { MemoryStore } from '../../shared/storage/memory-store.js'
import type { StoredDoc } from '../../shared/storage/store.js'
import { startRelay, type Relay } from '../../server/relay.js'
import { once, until } from '../helpers/events.js'
import { captureLog } from '../helpers/log-capture.js'
import { stockClient, type StockClient } from '../helpers/stock-client.js'

/** A MemoryStore whose loads can be held back and counted. */
class GatedStore extends MemoryStore {
  loads = 0
  readonly gates = new Map<DocId, Promise<void>>()
  override async load (docId: DocId): Promise<StoredDoc | null> {
    if (docId === 'probe') return null
    this.loads++
    await this.gates.get(docId)
    return super.load(docId)
  }
}

function textUpdate (content: string): Uint8Array {
  const doc = new Y.Doc()
  doc.getText('t').insert(0, content)
  return Y.encodeStateAsUpdate(doc)
}

let relay: Relay | null = null
const clients: StockClient[] = []
afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy()
  await relay?.close()
  relay = null
})
function client (docId: string): StockClient {
  const c = stockClient(relay!.url, docId)
  clients.push(c)
  return c
}

describe('document lifecycle', () => {
  it('answers no sync message before the document has loaded, and one load serves concurrent openers', async () => {
    const store = new GatedStore()
    await store.append(parseDocId('slow'), textUpdate('stored'))
    let open!: () => void
    store.gates.set(parseDocId('slow'), new Promise(resolve => { open = resolve }))
    relay = await startRelay({ port: 0, store, logger: captureLog('warn').logger })

    const raw = new WebSocket(`${relay.url}/slow`)
    const early: Buffer[] = []
    raw.on('message', data => early.push(data as Buffer))
    await once(raw, 'open')
    raw.send(new Uint8Array([0, 0, 1, 0])) // sync step 1 with an empty state vector
    const others = [client('slow'), client('slow'), client('slow')]
    await Promise.all(others.map(c => until('a stock client to connect',
      cb => { c.provider.on('status', cb); return () => c.provider.off('status', cb) }, () => c.provider.wsconnected)))
    // A round trip on another document proves the relay has handled what we sent.
    const probe = client('probe')
    await probe.synced()
    expect(early).toEqual([])
    expect(store.loads).toBe(1)

    open()
    await Promise.all(others.map(c => c.textIs('stored')))
    expect(store.loads).toBe(1)
    raw.close()
  })

  it('evicts an idle document and reloads it intact', async () => {
    const log = captureLog('debug')
    relay = await startRelay({ port: 0, store: new MemoryStore(), idleMs: 20, logger: log.logger })
    const a = client('idle')
    await a.synced()
    a.text.insert(0, 'kept on disk')
    const b = client('idle')
    await b.textIs('kept on disk')
    expect(relay.registry.has(parseDocId('idle'))).toBe(true)
    a.destroy()
    b.destroy()
    await log.waitFor('evicted idle document', entry => entry.doc === 'idle')
    expect(relay.registry.has(parseDocId('idle'))).toBe(false)
    expect(relay.health().documents).toBe(0)
    const c = client('idle')
    await c.synced()
    expect(c.text.toString()).toBe('kept on disk')
  })

  it('refuses a document whose stored data does not load, keeps the data, and serves others', async () => {
    const store = new GatedStore()
    const broken = parseDocId('broken')
    const good = textUpdate('precious')
    await store.append(broken, good.slice(0, good.length - 2))
    const before = JSON.stringify(await store.load(broken))
    const log = captureLog('error')
    relay = await startRelay({ port: 0, store, logger: log.logger })

    for (let attempt = 1; attempt <= 2; attempt++) {
      const raw = new WebSocket(`${relay.url}/broken`)
      raw.on('open', () => raw.send(new Uint8Array([0, 0, 1, 0])))
      const [code, reason] = await once<[number, Buffer]>(raw, 'close')
      expect(code).toBe(4503)
      expect(reason.toString()).toMatch(/failed to load/)
    }
    expect(JSON.stringify(await store.load(broken))).toBe(before)
    expect(store.loads).toBe(2 + 2) // each attempt retried the load; plus our two reads
    await log.waitFor('document failed to load; refusing connections to it')
    const other = client('healthy')
    await other.synced()
  })
})
