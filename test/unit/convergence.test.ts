/**
 * Seeded convergence property test: several replicas make random edits through an
 * in-memory relay whose links delay and duplicate messages, while replicas go offline
 * and connections are cut at random. Afterwards every replica and the relay hold the same
 * state. A failing run prints its seed; rerun with SEED=<n>.
 */
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { Replica } from '../../client/replica.js'
import { parseDocId } from '../../shared/wire/doc-id.js'
import { MemoryStore } from '../../shared/storage/memory-store.js'
import { NativeType } from '../../shared/wire/native-messages.js'
import { until } from '../helpers/events.js'
import { memoryRelay } from '../helpers/memory-relay.js'
import { prng, testSeed } from '../helpers/prng.js'

const DOC = 'prop/doc'

async function run (seed: number, replicaCount: number, steps: number): Promise<void> {
  const random = prng(seed)
  const relay = memoryRelay()
  // FIFO delivery with random delays (links are ordered, like TCP), duplicating some updates and acks.
  let lastDeliveryAt = 0
  relay.policy = (message, deliver) => {
    const at = Math.max(Date.now() + random.int(4), lastDeliveryAt)
    lastDeliveryAt = at
    const copies = (message[0] === NativeType.update || message[0] === NativeType.ack) && random.next() < 0.2 ? 2 : 1
    for (let i = 0; i < copies; i++) setTimeout(deliver, at - Date.now())
  }
  const online = Array.from({ length: replicaCount }, () => true)
  const replicas = online.map((_, index) => new Replica({
    store: new MemoryStore(),
    relays: ['memory://relay'],
    connect: async url => {
      if (!online[index]) throw new Error('offline')
      return relay.connect(url)
    },
    minReconnectDelayMs: 1,
    maxReconnectDelayMs: 10
  }))
  const docs = await Promise.all(replicas.map(r => r.open(DOC)))
  try {
    for (let step = 0; step < steps; step++) {
      const who = random.int(replicaCount)
      const roll = random.next()
      const text = docs[who]!.getText('t')
      if (roll < 0.6) {
        text.insert(random.int(text.length + 1), String.fromCharCode(97 + random.int(26)).repeat(1 + random.int(3)))
      } else if (roll < 0.8 && text.length > 0) {
        const at = random.int(text.length)
        text.delete(at, 1 + random.int(Math.min(3, text.length - at)))
      } else if (roll < 0.9) {
        online[who] = !online[who]
        if (!online[who]) relay.cut()
      } else {
        relay.cut()
      }
      if (random.next() < 0.3) await new Promise(resolve => setTimeout(resolve, random.int(5)))
    }
    online.fill(true)
    await Promise.all(replicas.map(r => r.doc(DOC).durable()))
    const texts = (): string[] => docs.map(doc => doc.getText('t').toString())
    await until('every replica to converge', cb => {
      for (const doc of docs) doc.on('update', cb)
      return () => { for (const doc of docs) doc.off('update', cb) }
    }, () => new Set(texts()).size === 1, 20_000)
    const vectors = docs.map(doc => [...Y.decodeStateVector(Y.encodeStateVector(doc))].sort())
    for (const vector of vectors) expect(vector).toEqual(vectors[0])
    expect(replicas.map(r => r.doc(DOC).pending)).toEqual(replicas.map(() => 0))
    // The relay's stored copy converged too.
    const stored = (await relay.store.load(parseDocId(DOC)))!
    const relayDoc = new Y.Doc()
    for (const part of [stored.snapshot, ...stored.updates]) if (part !== null) Y.applyUpdate(relayDoc, part)
    expect(relayDoc.getText('t').toString()).toBe(texts()[0])
  } finally {
    await Promise.all(replicas.map(r => r.close()))
  }
}

describe('convergence under faults (seeded)', () => {
  it.each([[3, 300], [5, 200]])('%i replicas, %i random steps', async (replicaCount, steps) => {
    const seed = testSeed()
    try {
      await run(seed, replicaCount, steps)
    } catch (error) {
      console.error(`convergence test failed with SEED=${seed}`)
      throw error
    }
  })
})
