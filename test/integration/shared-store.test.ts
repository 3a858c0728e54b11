/**
 * Several replicas on one store (two Node processes or tabs on one database): nobody's
 * compaction loses another's updates, `pending()` counts every change no relay
 * acknowledged across reopens, and replicas with `tabs` sync over a BroadcastChannel.
 */
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { Replica } from '../../client/replica.js'
import { SqliteStore } from '../../client/node.js'
import { startRelay } from '../../server/relay.js'
import { until } from '../helpers/events.js'
import { captureLog } from '../helpers/log-capture.js'
import { tempDir } from '../helpers/temp.js'

const dir = tempDir()
let files = 0
const open: Replica[] = []
afterEach(async () => { await Promise.all(open.splice(0).map(r => r.close())) })

function replica (path: string, options: Partial<ConstructorParameters<typeof Replica>[0]> = {}): Replica {
  const r = new Replica({ store: new SqliteStore(path), minReconnectDelayMs: 5, maxReconnectDelayMs: 50, ...options })
  open.push(r)
  return r
}

async function close (r: Replica): Promise<void> {
  open.splice(open.indexOf(r), 1)
  await r.close()
}

const textOf = (doc: Y.Doc): string => doc.getText('t').toString()

describe('replicas sharing one store', () => {
  it('keeps pending() exact across a reopen: each replica counts its own changes, a reopened one all of them', async () => {
    const path = join(dir, `shared-${files++}.db`)
    const x = replica(path)
    const y = replica(path)
    const docX = await x.open('counted')
    const docY = await y.open('counted')
    docX.getText('t').insert(0, 'a')
    docX.getText('t').insert(0, 'b')
    docY.getText('t').insert(0, 'c')
    await Promise.all([x.doc('counted').saved(), y.doc('counted').saved()])
    expect([x.doc('counted').pending, y.doc('counted').pending]).toEqual([2, 1])
    await Promise.all([close(x), close(y)])
    const reopened = replica(path)
    await reopened.open('counted')
    expect(reopened.doc('counted').pending).toBe(3)
  })

  it.each([false, true])('loses nothing when both write offline and each compacts (synced over a channel meanwhile: %s)', async (tabs) => {
    const path = join(dir, `shared-${files++}.db`)
    const channel = `tabs-${files}`
    const a = replica(path, { tabs: tabs && channel })
    const b = replica(path, { tabs: tabs && channel })
    const [docA, docB] = await Promise.all([a.open('raced'), b.open('raced')])
    // Past the 16 KiB compaction threshold on both sides, with writes interleaved.
    const chunk = 'x'.repeat(1024)
    const markers: string[] = []
    for (let i = 0; i < 40; i++) {
      docA.getText('t').insert(0, `<A${i}>${chunk}`)
      docB.getText('t').insert(0, `<B${i}>${chunk}`)
      markers.push(`<A${i}>`, `<B${i}>`)
      if (i % 8 === 0) await new Promise(resolve => setImmediate(resolve))
    }
    if (tabs) {
      await until('both to converge over the channel', cb => { docA.on('update', cb); docB.on('update', cb); return () => { docA.off('update', cb); docB.off('update', cb) } },
        () => markers.every(marker => textOf(docA).includes(marker) && textOf(docB).includes(marker)))
    }
    await Promise.all([close(a), close(b)])
    const reopened = replica(path)
    const text = textOf(await reopened.open('raced'))
    expect(markers.filter(marker => !text.includes(marker))).toEqual([])
    expect(reopened.doc('raced').pending).toBe(80)
  })

  it('counts changes as durable once one reopened replica synced everything it loaded with a relay', async () => {
    const path = join(dir, `shared-${files++}.db`)
    const relay = await startRelay({ port: 0, dataDir: join(dir, `relay-${files}`), logger: captureLog('warn').logger })
    try {
      const x = replica(path)
      const y = replica(path)
      ;(await x.open('later')).getText('t').insert(0, 'x')
      ;(await y.open('later')).getText('t').insert(0, 'y')
      await Promise.all([close(x), close(y)])
      const online = replica(path, { relays: [relay.url] })
      await online.open('later')
      expect(online.doc('later').pending).toBe(2)
      await online.doc('later').durable()
      expect(online.doc('later').pending).toBe(0)
      await close(online)
      const after = replica(path)
      await after.open('later')
      expect(after.doc('later').pending).toBe(0)
    } finally {
      await relay.close()
    }
  })
})
