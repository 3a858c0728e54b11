/**
 * A replica tells its app the truth about refusals, and does not hammer a relay that refuses:
 * a refused token (4401) is one `refused` event and no redialing until `setToken()`; a
 * document refused alone (4403) shows status `refused` with the reason, and `durable()`
 * says it will not be; a document whose stored state holds an update the relay refuses as
 * invalid (4400) is quarantined instead of being re-sent on every handshake, and the other
 * documents keep syncing. Real relay, real sockets (through a proxy that counts them).
 */
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { Replica, type RefusedEvent } from '../../client/replica.js'
import { SqliteStore } from '../../client/node.js'
import { RefusedError } from '../../shared/errors.js'
import { parseDocId } from '../../shared/wire/doc-id.js'
import { startRelay, type Relay } from '../../server/relay.js'
import { craftUpdate } from '../helpers/crafted-updates.js'
import { until } from '../helpers/events.js'
import { captureLog } from '../helpers/log-capture.js'
import { tcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js'
import { tempDir } from '../helpers/temp.js'
import { signToken } from '../helpers/tokens.js'

const dir = tempDir()
let files = 0
const SECRET = 'a-relay-secret-of-16+chars'
const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => { for (const cleanup of cleanups.splice(0).reverse()) await cleanup() })

async function relayBehindProxy (auth: boolean): Promise<{ relay: Relay, proxy: TcpProxy }> {
  const relay = await startRelay({ port: 0, dataDir: join(dir, `relay-${files++}`), logger: captureLog('error').logger, ...(auth ? { authKeys: new Map([['', SECRET]]) } : {}) })
  cleanups.push(() => relay.close())
  const proxy = await tcpProxy(() => relay.port)
  cleanups.push(() => proxy.close())
  return { relay, proxy }
}

function replica (url: string, token?: string | (() => string), path = join(dir, `r${files++}.db`)): Replica {
  const r = new Replica({ store: new SqliteStore(path), relays: [url], minReconnectDelayMs: 5, maxReconnectDelayMs: 50, ...(token === undefined ? {} : { token }) })
  cleanups.push(() => r.close())
  return r
}

const nextRefusal = (r: Replica): Promise<RefusedEvent> => new Promise(resolve => r.once('refused', resolve))

/**
 * Lets the replica run for a while: the only way to see that it does NOT redial. With a
 * 5-50 ms backoff a replica that redialed would connect dozens of times in this window.
 */
const quietWindow = (): Promise<void> => new Promise(resolve => setTimeout(resolve, 500))

describe('a relay that refuses the token (4401)', () => {
  it('is reported once, shown on the documents, and not redialed until setToken()', async () => {
    const { proxy } = await relayBehindProxy(true)
    const r = replica(proxy.url, 'not-a-token')
    const refused = nextRefusal(r)
    const handle = r.doc('team/notes')
    await handle.whenLoaded()
    handle.ydoc.getText('t').insert(0, 'written while refused')
    expect(await refused).toMatchObject({ url: proxy.url, code: 4401 })
    await until('status refused', cb => { handle.on('status', cb); return () => handle.off('status', cb) }, () => handle.status === 'refused')
    expect(handle.refusal).toMatchObject({ code: 4401 })
    await quietWindow()
    expect(proxy.accepted).toBe(1)

    r.setToken(await signToken(SECRET, { write: ['team/*'] }))
    await handle.durable()
    expect(handle.status).toBe('durable')
    expect(handle.refusal).toBeNull()
    expect(proxy.accepted).toBe(2)
  })

  it('with a token function, asks it again once at once, then waits minutes', async () => {
    const { proxy } = await relayBehindProxy(true)
    let asked = 0
    const r = replica(proxy.url, () => { asked++; return 'still-not-a-token' })
    const refusals: RefusedEvent[] = []
    r.on('refused', event => refusals.push(event))
    r.doc('team/notes')
    await until('two refusals', cb => { r.on('refused', cb); return () => r.off('refused', cb) }, () => refusals.length === 2)
    await quietWindow()
    expect(refusals.length).toBe(2)
    expect(asked).toBe(2)
    expect(proxy.accepted).toBe(2)
  })
})

describe('a document refused alone', () => {
  it('shows status refused with the reason (4403), keeps its change pending, and durable() says it will not be', async () => {
    const { proxy } = await relayBehindProxy(true)
    const r = replica(proxy.url, await signToken(SECRET, { read: ['team/*'] }))
    const handle = r.doc('team/read-only')
    await handle.synced()
    const refused = nextRefusal(r)
    const durable = handle.durable()
    handle.ydoc.getText('t').insert(0, 'not mine to write')
    expect(await refused).toMatchObject({ docId: 'team/read-only', code: 4403 })
    await expect(durable).rejects.toBeInstanceOf(RefusedError)
    await expect(handle.durable()).rejects.toMatchObject({ code: 4403 })
    expect(handle.status).toBe('refused')
    expect(handle.refusal).toMatchObject({ code: 4403, reason: expect.stringMatching(/read-only/) })
    expect(handle.pending).toBe(1)
  })
})

describe('a document whose store holds an update the relay refuses', () => {
  it('is quarantined: refused once, not re-sent on every handshake, and the other documents stay durable', async () => {
    const { proxy } = await relayBehindProxy(false)
    // A store poisoned before this replica checked what peers send: an item whose origin and
    // right origin are in different lists (the relay refuses it with 4400).
    const path = join(dir, `r${files++}.db`)
    const store = new SqliteStore(path)
    const docId = parseDocId('q/poisoned')
    await store.append(docId, craftUpdate([{ client: 1, clock: 0, structs: [{ parent: 't', text: 'a' }] }, { client: 2, clock: 0, structs: [{ parent: 'u', text: 'b' }] }]))
    await store.append(docId, craftUpdate([{ client: 3, clock: 0, structs: [{ origin: [1, 0], right: [2, 0], text: 'd' }] }]))
    await store.close()

    const r = replica(proxy.url, undefined, path)
    const refused = nextRefusal(r)
    const poisoned = r.doc('q/poisoned')
    const healthy = r.doc('q/healthy')
    await Promise.all([poisoned.whenLoaded(), healthy.whenLoaded()])
    healthy.ydoc.getText('t').insert(0, 'fine')
    poisoned.ydoc.getText('t').insert(0, 'stays here')
    expect(await refused).toMatchObject({ docId: 'q/poisoned', code: 4400, reason: expect.stringMatching(/different lists/) })
    await healthy.durable()
    expect(poisoned.status).toBe('refused')
    expect(poisoned.refusal).toMatchObject({ code: 4400 })
    await expect(poisoned.durable()).rejects.toMatchObject({ code: 4400 })
    expect(poisoned.pending).toBe(1)
    await quietWindow()
    // The relay closed the link once; the replica came back once, without the poisoned document.
    expect(proxy.accepted).toBe(2)
    healthy.ydoc.getText('t').insert(4, '!')
    await healthy.durable()
  })
})
