/**
 * The document handle: returned at once, usable before the document has loaded (with the
 * app's own Y.Doc), reporting its status and pending changes as events; "saved" only once
 * the local store's write finished; invalid ids and options fail clearly, not by throwing
 * from inside.
 */
import { afterEach, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { Replica, type ReplicaOptions } from '../../client/replica.js'
import type { DocStatus } from '../../client/doc-handle.js'
import { MemoryStore } from '../../shared/storage/memory-store.js'
import { InvalidDocIdError, type DocId } from '../../shared/wire/doc-id.js'
import { until } from '../helpers/events.js'
import { memoryRelay } from '../helpers/memory-relay.js'

const replicas: Replica[] = []
afterEach(async () => { await Promise.all(replicas.splice(0).map(r => r.close())) })

function replica (options: Partial<ReplicaOptions> = {}): Replica {
  const r = new Replica({ store: new MemoryStore(), minReconnectDelayMs: 1, maxReconnectDelayMs: 20, ...options })
  replicas.push(r)
  return r
}

/** A memory store whose writes wait until `release()`: a slow disk. */
class SlowStore extends MemoryStore {
  private gate: Promise<void> = new Promise(() => {})
  private open: () => void = () => {}
  hold (): void {
    this.gate = new Promise(resolve => { this.open = resolve })
  }

  release (): void {
    this.open()
  }

  override async append (docId: DocId, update: Uint8Array): Promise<void> {
    await this.gate
    return await super.append(docId, update)
  }

  override async updateMeta (docId: DocId, update: (current: Uint8Array | null) => Uint8Array | null): Promise<void> {
    await this.gate
    return await super.updateMeta(docId, update)
  }

  constructor () {
    super()
    this.gate = Promise.resolve()
  }
}

describe('document handle', () => {
  it('is usable at once, with the app\'s own Y.Doc; changes made before the load are kept and stored', async () => {
    const store = new MemoryStore()
    const first = new Replica({ store })
    ;(await first.open('notes/1')).getText('t').insert(0, 'stored ')
    await first.close()

    const r = replica({ store })
    const ydoc = new Y.Doc()
    const handle = r.doc('notes/1', { ydoc })
    expect(handle.ydoc).toBe(ydoc)
    expect(handle.status).toBe('loading')
    expect(handle.awareness).toBeDefined()
    ydoc.getText('t').insert(0, 'early ') // before the stored state is in
    await handle.whenLoaded()
    expect(ydoc.getText('t').toString()).toMatch(/early stored |stored early /)
    await handle.saved()
    expect(handle.pending).toBe(2) // the earlier session's change still awaits a relay, and this one

    expect(r.doc('notes/1')).toBe(handle)
    await r.close()
    replicas.splice(replicas.indexOf(r), 1)
    const again = replica({ store })
    expect((await again.open('notes/1')).getText('t').toString()).toBe(ydoc.getText('t').toString())
  })

  it('reports status and pending as events: loading, offline, saved, then synced and durable through a relay', async () => {
    const relay = memoryRelay()
    relay.down()
    const r = replica({ relays: ['memory://relay'], connect: relay.connect })
    const handle = r.doc('status/1')
    const statuses: DocStatus[] = [handle.status]
    const pendings: number[] = []
    handle.on('status', status => statuses.push(status))
    handle.on('pending', pending => pendings.push(pending))
    const reaches = (status: DocStatus): Promise<void> => until(`status ${status}`, cb => { handle.on('status', cb); return () => handle.off('status', cb) }, () => handle.status === status)
    await reaches('offline')
    handle.ydoc.getText('t').insert(0, 'offline edit')
    await reaches('saved')
    relay.up()
    await reaches('durable')
    handle.ydoc.getText('t').insert(0, '!')
    await reaches('durable')
    expect(statuses.slice(0, 4)).toEqual(['loading', 'offline', 'saved', statuses[3]])
    expect(statuses).toContain('synced')
    expect(statuses.at(-1)).toBe('durable')
    expect(pendings).toEqual([1, 0, 1, 0])
  })

  it('reconnects at once when told the network changed, whatever the backoff had grown to', async () => {
    const relay = memoryRelay()
    relay.down()
    let attempts = 0
    const connect = (url: string): ReturnType<typeof relay.connect> => { attempts++; return relay.connect(url) }
    // A backoff that has grown to minutes: without reconnect() the next attempt would be far away.
    const r = replica({ relays: ['memory://relay'], connect, minReconnectDelayMs: 600_000, maxReconnectDelayMs: 600_000 })
    const handle = r.doc('reconnect/1')
    await until('a first failed attempt', cb => { r.on('status', cb); return () => r.off('status', cb) }, () => attempts >= 1 && r.doc('reconnect/1').peers.length === 0)
    handle.ydoc.getText('t').insert(0, 'made offline')
    relay.up()
    r.reconnect()
    await handle.durable()
    expect(attempts).toBe(2)
  })

  it('counts a change as saved, and pending, only once the local store\'s write finished', async () => {
    const store = new SlowStore()
    const r = replica({ store })
    const handle = r.doc('slow/1')
    await handle.whenLoaded()
    store.hold()
    handle.ydoc.getText('t').insert(0, 'written slowly')
    await new Promise(resolve => setTimeout(resolve, 20)) // the write is stuck: nothing may claim it is saved
    expect(handle.pending).toBe(0)
    expect(handle.status).toBe('offline')
    store.release()
    await until('the write to finish', cb => { handle.on('pending', cb); return () => handle.off('pending', cb) }, () => handle.pending === 1)
    expect(handle.status).toBe('saved')
  })

  it('makes open reject, and a handle fail, for an invalid id; nothing throws from inside', async () => {
    const r = replica()
    await expect(r.open('a//b')).rejects.toThrow(InvalidDocIdError)
    const handle = r.doc('../etc')
    expect(handle.status).toBe('failed')
    await expect(handle.whenLoaded()).rejects.toThrow(/"\.\."/)
  })

  it('checks its options with clear errors', () => {
    expect(() => new Replica({} as ReplicaOptions)).toThrow(/need a store: a MemoryStore, a SqliteStore/)
    expect(() => new Replica({ store: new MemoryStore(), relays: 'ws://127.0.0.1:4321' } as unknown as ReplicaOptions)).toThrow(/relays must be an array of URLs/)
    expect(() => new Replica({ store: new MemoryStore(), peers: ['http://x'] })).toThrow(/not a ws:\/\/ or wss:\/\/ URL/)
    expect(() => new Replica({ store: new MemoryStore(), peerId: '' })).toThrow(/peerId: a peer id has 1 to 128 characters/)
    expect(() => new Replica({ store: new MemoryStore(), peerId: 'tab\n1' })).toThrow(/no control characters/)
  })
})
