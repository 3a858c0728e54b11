/**
 * The HTTP document API on relay processes: a POST's 200 survives kill -9 of the relay right
 * after it, on one relay and on a cluster's write quorum; in a cluster any relay answers
 * every route, and a deletion reaches every home, also one that was down when it happened.
 */
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { homesOf } from '../../shared/placement.js'
import { CloseCode } from '../../shared/wire/close-codes.js'
import { startCluster, type TestCluster } from '../helpers/cluster-process.js'
import { startRelayProcess, type RelayProcess } from '../helpers/relay-process.js'
import { stockClient } from '../helpers/stock-client.js'
import { tempDir } from '../helpers/temp.js'
import { onDisk } from '../helpers/on-disk.js'
import { until } from '../helpers/events.js'

const root = tempDir()
let n = 0
const fresh = (name: string): string => join(root, `${name}-${n++}`)
const clusters: TestCluster[] = []
const relays: RelayProcess[] = []
afterEach(async () => {
  await Promise.all(clusters.splice(0).map(c => c.stopAll()))
  await Promise.all(relays.splice(0).map(r => r.stop('SIGKILL')))
})

const http = (url: string): string => url.replace('ws:', 'http:')

function textUpdate (text: string): Uint8Array<ArrayBuffer> {
  const doc = new Y.Doc()
  doc.getText('t').insert(0, text)
  return new Uint8Array(Y.encodeStateAsUpdate(doc))
}

async function textAt (url: string, docId: string): Promise<string | number> {
  const response = await fetch(`${http(url)}/v1/docs/${docId}?format=json`)
  if (response.status !== 200) return response.status
  return (await response.json() as { t?: string }).t ?? ''
}


describe('the HTTP document API on relay processes', () => {
  it('keeps what a POST acknowledged when the relay is killed with SIGKILL right after the 200', async () => {
    const dir = fresh('single')
    let relay = await startRelayProcess(dir)
    relays.push(relay)
    for (let i = 0; i < 5; i++) {
      const response = await fetch(`${http(relay.url)}/v1/docs/durable/${i}`, { method: 'POST', body: textUpdate(`write ${i}`) })
      expect(response.status).toBe(200)
      await relay.stop('SIGKILL')
      relay = await startRelayProcess(dir)
      relays.push(relay)
      expect(await textAt(relay.url, `durable/${i}`)).toBe(`write ${i}`)
    }
  })

  it('in a cluster, answers every route at any relay, and a 200 is on the write quorum\'s disks', async () => {
    const c = await cluster(3, { copies: 2, writeQuorum: 2 })
    const docId = 'cluster/http'
    const outsider = c.relays.find(relay => !homesOf(docId, c.relays, 2).some(home => home.id === relay.id))!
    const response = await fetch(`${http(outsider.url)}/v1/docs/${docId}`, { method: 'POST', body: textUpdate('through an outsider') })
    expect(response.status).toBe(200)
    // W=2 of R=2: both homes committed it before the 200, so killing every relay loses nothing.
    await c.stopAll('SIGKILL')
    for (const relay of c.relays) await c.start(relay.id)
    for (const relay of c.relays) expect(await textAt(relay.url, docId)).toBe('through an outsider')
    const listing = await (await fetch(`${http(outsider.url)}/v1/docs?prefix=cluster/`)).json() as { docs: Array<{ id: string }> }
    expect(listing.docs.map(doc => doc.id)).toEqual([docId])
  })

  it('deletes on every home, from any relay, and a home that was down deletes its copy when it next syncs the document', async () => {
    const c = await cluster(3, { copies: 3, writeQuorum: 2 })
    const docId = 'cluster/delete'
    const marker = 'MARKER-cluster-erase-41c2'
    const [first, second, away] = homesOf(docId, c.relays, 3)
    expect((await fetch(`${http(first!.url)}/v1/docs/${docId}`, { method: 'POST', body: textUpdate(marker) })).status).toBe(200)
    await until('every home to store the marker', cb => { const t = setInterval(cb, 10); return () => clearInterval(t) }, () => c.relays.every(relay => onDisk(relay.dataDir, marker)))
    await c.kill(away!.id)

    const live = stockClient(second!.url, docId)
    await live.synced()
    const closed = new Promise<number>(resolve => live.provider.on('connection-close', (event: { code: number } | null) => { if (event !== null) resolve(event.code) }))
    expect((await fetch(`${http(first!.url)}/v1/docs/${docId}`, { method: 'DELETE' })).status).toBe(204)
    expect(await closed).toBe(CloseCode.deleted)
    live.destroy()
    expect(onDisk(c.relays.find(r => r.id === first!.id)!.dataDir, marker)).toBe(false)
    expect(onDisk(c.relays.find(r => r.id === second!.id)!.dataDir, marker)).toBe(false)
    for (const id of [first!.id, second!.id]) expect(await textAt(c.relays.find(r => r.id === id)!.url, docId)).toBe(404)

    // The home that was away still has it; once it syncs the document with another home, it deletes it too.
    const returning = c.relays.find(r => r.id === away!.id)!
    expect(onDisk(returning.dataDir, marker)).toBe(true)
    await c.start(away!.id)
    const late = stockClient(returning.url, docId)
    const lateClosed = new Promise<number>(resolve => late.provider.on('connection-close', (event: { code: number } | null) => { if (event !== null) resolve(event.code) }))
    expect(await lateClosed).toBe(CloseCode.deleted)
    late.destroy()
    expect(await textAt(returning.url, docId)).toBe(404)
    expect(onDisk(returning.dataDir, marker)).toBe(false)
  })
})

describe('tombstones in a cluster', () => {
  it('a home that was down when documents were deleted serves none of them when it returns, and erases them without anyone opening them', async () => {
    // Deleted documents leave the other homes' memory soon (as they do a while after a deletion).
    const c = await cluster(3, { copies: 3, writeQuorum: 2, extraArgs: ['--idle-ms', '100'] })
    const marker = (name: string): string => `MARKER-returning-${name}-c07e`
    const names = ['read', 'opened', 'untouched']
    for (const name of names) {
      expect((await fetch(`${http(c.relays[0]!.url)}/v1/docs/returning/${name}`, { method: 'POST', body: textUpdate(marker(name)) })).status).toBe(200)
    }
    await until('every home to store the markers', cb => { const t = setInterval(cb, 10); return () => clearInterval(t) },
      () => c.relays.every(relay => names.every(name => onDisk(relay.dataDir, marker(name)))))
    const away = c.relays[2]!
    await c.kill(away.id)
    for (const name of names) expect((await fetch(`${http(c.relays[0]!.url)}/v1/docs/returning/${name}`, { method: 'DELETE' })).status).toBe(204)
    expect(names.every(name => onDisk(away.dataDir, marker(name)))).toBe(true)
    await new Promise(resolve => setTimeout(resolve, 500))

    await c.start(away.id)
    // At once, before the returning home could have synced anything: a reader gets no content.
    const [read, stock] = await Promise.all([
      fetch(`${http(away.url)}/v1/docs/returning/read`),
      (async () => {
        const client = stockClient(away.url, 'returning/opened')
        const seen: string[] = []
        client.doc.on('update', () => seen.push(client.text.toString()))
        const code = await new Promise<number>(resolve => client.provider.on('connection-close', (event: { code: number } | null) => { if (event !== null) resolve(event.code) }))
        client.destroy()
        return { code, seen }
      })()
    ])
    expect([404, 410]).toContain(read.status)
    expect(stock.code).toBe(CloseCode.deleted)
    expect(stock.seen.filter(text => text !== '')).toEqual([])
    // Nobody opens the third document there: the tombstone reaches it anyway.
    await until('the returning home to erase every deleted document', cb => { const t = setInterval(cb, 20); return () => clearInterval(t) },
      () => names.every(name => !onDisk(away.dataDir, marker(name))), 5000)
  })
})

async function cluster (size: number, settings: Parameters<typeof startCluster>[2]): Promise<TestCluster> {
  const c = await startCluster(fresh('cluster'), size, settings)
  clusters.push(c)
  return c
}
