/**
 * Disk faults: when the relay's store fails (disk full, I/O errors), nothing is
 * acknowledged that was not stored, nothing that was not stored is served, the writers are
 * asked to try again, and once the store works again everything arrives, is acknowledged
 * and survives a restart. Once with an injected failing store; once, when the tests run as
 * root, with a real SQLITE_FULL on a small tmpfs.
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { Replica } from '../../client/replica.js'
import { SqliteStore } from '../../client/node.js'
import { MemoryStore } from '../../shared/storage/memory-store.js'
import type { StoreWrite } from '../../shared/storage/batched-store.js'
import { startRelay, type Relay } from '../../server/relay.js'
import { relayDatabasePath } from '../../server/data-dir.js'
import { until } from '../helpers/events.js'
import { captureLog } from '../helpers/log-capture.js'
import { stockClient, type StockClient } from '../helpers/stock-client.js'
import { tempDir } from '../helpers/temp.js'

const root = tempDir()
let n = 0
const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => { for (const cleanup of cleanups.splice(0).reverse()) await cleanup() })

/** A SQLite store whose commits of updates fail while `failing` is set, as on a full disk. */
class FailingStore extends SqliteStore {
  failing = false
  protected override commitBatch (writes: StoreWrite[]): void {
    if (this.failing && writes.some(write => write.kind === 'append')) throw new Error('SQLITE_FULL: database or disk is full')
    super.commitBatch(writes)
  }
}

function client (relay: Relay, docId: string): StockClient {
  const c = stockClient(relay.url, docId)
  cleanups.push(() => c.destroy())
  return c
}

/** Waits, for a bounded time, until `client` has `expected`, checking that it never saw `never` meanwhile. */
async function reaches (c: StockClient, expected: string, never?: string): Promise<void> {
  await until(`text ${JSON.stringify(expected)}`, cb => {
    const check = (): void => {
      if (never !== undefined && c.text.toString().includes(never)) throw new Error(`saw ${JSON.stringify(never)}, which was never stored`)
      cb()
    }
    c.doc.on('update', check)
    return () => c.doc.off('update', check)
  }, () => c.text.toString() === expected, 20_000)
}

async function scenario (relay: Relay, setFailing: (failing: boolean) => void, restart: () => Promise<Relay>): Promise<void> {
  const writer = client(relay, 'faulty')
  await writer.synced()
  writer.text.insert(0, 'stored ')
  const native = new Replica({ store: new MemoryStore(), relays: [relay.url], minReconnectDelayMs: 10, maxReconnectDelayMs: 100 })
  cleanups.push(() => native.close())
  const nativeDoc = await native.open('faulty')
  await until('the native replica to have it', cb => { nativeDoc.on('update', cb); return () => nativeDoc.off('update', cb) }, () => nativeDoc.getText('t').toString() === 'stored ')

  setFailing(true)
  writer.text.insert(7, 'lost?')
  nativeDoc.getText('t').insert(0, '> ')
  // The failed commit makes the relay reload the document: a fresh client gets only what is stored.
  await relayLogged(relay, 'failed to store an update; reloading the document from storage')
  const fresh = client(relay, 'faulty')
  await fresh.synced()
  expect(fresh.text.toString()).toBe('stored ')
  expect(native.doc('faulty').pending).toBe(1)

  setFailing(false)
  // Writers re-send what was not stored: it arrives, is acknowledged and survives a restart.
  await reaches(fresh, '> stored lost?')
  await native.doc('faulty').durable()
  expect(native.doc('faulty').pending).toBe(0)
  const again = await restart()
  const late = client(again, 'faulty')
  await late.synced()
  expect(late.text.toString()).toBe('> stored lost?')
}

const logs = new WeakMap<Relay, ReturnType<typeof captureLog>>()
const relayLogged = (relay: Relay, message: string): Promise<unknown> => logs.get(relay)!.waitFor(message)

async function relayOn (store: SqliteStore): Promise<Relay> {
  const log = captureLog('info')
  const relay = await startRelay({ port: 0, store, logger: log.logger })
  logs.set(relay, log)
  return relay
}

describe('disk faults', () => {
  it('with a store that fails: no false acknowledgement, nothing unstored served, recovery, and a restart keeps it all', async () => {
    const path = join(root, `faulty-${n++}`, 'relay.db')
    const store = new FailingStore(path)
    let relay = await relayOn(store)
    cleanups.push(() => relay.close())
    await scenario(relay, failing => { store.failing = failing }, async () => {
      await relay.close()
      relay = await relayOn(new SqliteStore(path))
      return relay
    })
  })

  // Needs root for the mount; elsewhere the injected failing store above covers the same path.
  it.runIf(process.getuid?.() === 0)('with a real full disk (SQLITE_FULL on a 4 MiB tmpfs), the same', async (context) => {
    const tmpfs = join(root, `tmpfs-${n++}`)
    mkdirSync(tmpfs, { recursive: true })
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', tmpfs], { stdio: 'ignore' })
    } catch {
      return context.skip('this machine does not let the tests mount a tmpfs')
    }
    cleanups.push(() => { execFileSync('umount', ['-l', tmpfs], { stdio: 'ignore' }) })
    const dataDir = join(tmpfs, 'relay')
    const filler = join(tmpfs, 'filler')
    let relay = await relayOn(new SqliteStore(relayDatabasePath(dataDir)))
    cleanups.push(() => relay.close())
    await scenario(relay, failing => {
      if (!failing) return rmSync(filler, { force: true })
      // Fill the disk up to the last byte.
      let size = 4 * 1024 * 1024
      while (size >= 1) {
        try {
          writeFileSync(filler, Buffer.alloc(size), { flag: 'a' })
        } catch {
          size = Math.floor(size / 2)
        }
      }
    }, async () => {
      await relay.close()
      relay = await relayOn(new SqliteStore(relayDatabasePath(dataDir)))
      return relay
    })
  })
})
