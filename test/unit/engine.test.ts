/**
 * The sync engine under faults (seeded): five replicas in a mesh of relay links and peer
 * links (each handshake running in both roles), over in-memory links that delay messages
 * (so messages of different links interleave in any order), duplicate any message, and are
 * cut and re-established at random, while everyone edits. Afterwards every replica and the
 * relay's stored copy converge, and the relay's replicas have nothing pending. A failing
 * run prints its seed; rerun with SEED=<n>.
 */
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { Replica } from '../../client/replica.js'
import { MemoryStore } from '../../shared/storage/memory-store.js'
import { linkPair, type DeliveryPolicy, type Link } from '../../shared/transport/link.js'
import { acceptNative } from '../../shared/listen/native-accept.js'
import { silentLogger } from '../../shared/listen/logger.js'
import { parseDocId } from '../../shared/wire/doc-id.js'
import { until } from '../helpers/events.js'
import { memoryRelay } from '../helpers/memory-relay.js'
import { prng, testSeed } from '../helpers/prng.js'

const DOC = 'engine/doc'

async function run (seed: number, steps: number): Promise<void> {
  const random = prng(seed)
  const links = new Set<Link>()
  let faults = true
  // FIFO per link with random delays; any message may arrive twice.
  const policy = (): DeliveryPolicy => {
    let last = 0
    return (_message, deliver) => {
      const at = Math.max(Date.now() + random.int(5), last)
      last = at
      const copies = faults && random.next() < 0.1 ? 2 : 1
      for (let i = 0; i < copies; i++) setTimeout(deliver, at - Date.now())
    }
  }
  const relay = memoryRelay()
  const relayPolicy = policy()
  relay.policy = (message, deliver) => relayPolicy(message, deliver)

  const replicas: Replica[] = []
  /** `memory://N` reaches replica N, which accepts peers as `listenForPeers` does. */
  const connectPeer = async (url: string): Promise<Link> => {
    const target = replicas[Number(url.slice('memory://'.length))]!
    const [dialer, acceptor] = linkPair(policy())
    acceptNative(acceptor, { self: target.self, authenticator: null, logger: silentLogger, maxDocs: 100, numbered: true, serve: docId => target.serveToPeer(docId) })
    links.add(dialer)
    return dialer
  }
  const topology: Array<{ relay: boolean, peers: number[] }> = [
    { relay: true, peers: [] },
    { relay: true, peers: [] },
    { relay: false, peers: [0] },
    { relay: false, peers: [2] },
    { relay: false, peers: [1, 3] }
  ]
  for (const node of topology) {
    replicas.push(new Replica({
      store: new MemoryStore(),
      relays: node.relay ? ['memory://relay'] : [],
      peers: node.peers.map(peer => `memory://${peer}`),
      connect: async url => url === 'memory://relay' ? await relay.connect(url) : await connectPeer(url),
      minReconnectDelayMs: 1,
      maxReconnectDelayMs: 10
    }))
  }
  const docs = await Promise.all(replicas.map(r => r.open(DOC)))
  try {
    for (let step = 0; step < steps; step++) {
      const text = docs[random.int(docs.length)]!.getText('t')
      const roll = random.next()
      if (roll < 0.6) text.insert(random.int(text.length + 1), String.fromCharCode(97 + random.int(26)).repeat(1 + random.int(3)))
      else if (roll < 0.8 && text.length > 0) {
        const at = random.int(text.length)
        text.delete(at, 1 + random.int(Math.min(3, text.length - at)))
      } else if (roll < 0.9) {
        const cut = [...links][random.int(links.size)]
        cut?.close(1006, 'cut')
        if (cut !== undefined) links.delete(cut)
      } else {
        relay.cut()
      }
      if (random.next() < 0.3) await new Promise(resolve => setTimeout(resolve, random.int(4)))
    }
    faults = false
    const texts = (): string[] => docs.map(doc => doc.getText('t').toString())
    await until('every replica to converge', cb => {
      for (const doc of docs) doc.on('update', cb)
      return () => { for (const doc of docs) doc.off('update', cb) }
    }, () => new Set(texts()).size === 1, 20_000)
    const vectors = docs.map(doc => [...Y.decodeStateVector(Y.encodeStateVector(doc))].sort())
    for (const vector of vectors) expect(vector).toEqual(vectors[0])
    // Everything anyone wrote reaches the relay, through neighbours for those without one:
    // a fresh replica of the relay alone gets it all, and so does the relay's store.
    await Promise.all([replicas[0]!.doc(DOC).durable(), replicas[1]!.doc(DOC).durable()])
    const observer = new Replica({ store: new MemoryStore(), relays: ['memory://relay'], connect: relay.connect })
    replicas.push(observer)
    const seen = await observer.open(DOC)
    await until('the relay to hold everything', cb => { seen.on('update', cb); return () => seen.off('update', cb) },
      () => seen.getText('t').toString() === texts()[0], 20_000)
    const stored = (await relay.store.load(parseDocId(DOC)))!
    const relayDoc = new Y.Doc()
    for (const part of [stored.snapshot, ...stored.updates]) if (part !== null) Y.applyUpdate(relayDoc, part)
    expect(relayDoc.getText('t').toString()).toBe(texts()[0])
  } finally {
    await Promise.all(replicas.map(r => r.close()))
  }
}

describe('sync engine under faults (seeded)', () => {
  it.each([[300], [300]])('a mesh of relay and peer links, %i random steps', async (steps) => {
    const seed = testSeed()
    try {
      await run(seed, steps)
    } catch (error) {
      console.error(`engine test failed with SEED=${seed}`)
      throw error
    }
  })
})
