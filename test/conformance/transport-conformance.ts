/**
 * The conformance suite every transport passes: a connected pair of Links must deliver
 * messages in order and intact both ways, close both ends once with the code and reason
 * given, drop what is sent after a close, and carry the sync engine's handshake in both
 * roles. Call it from a test file with a factory of connected pairs.
 */
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { LocalDoc } from '../../client/local-doc.js'
import { LinkGroup } from '../../client/link-group.js'
import { MemoryStore } from '../../shared/storage/memory-store.js'
import { parseDocId } from '../../shared/wire/doc-id.js'
import type { Link } from '../../shared/transport/link.js'
import { until } from '../helpers/events.js'

/** A connected pair, and how to release what it holds. */
export interface LinkPairFixture {
  pair: [Link, Link]
  teardown?: () => Promise<void> | void
}

function collect (link: Link): { messages: Uint8Array[], closes: Array<[number, string]>, changed: Set<() => void> } {
  const changed = new Set<() => void>()
  const state = { messages: [] as Uint8Array[], closes: [] as Array<[number, string]>, changed }
  link.onMessage = message => { state.messages.push(message); for (const cb of changed) cb() }
  link.onClose = (code, reason) => { state.closes.push([code, reason]); for (const cb of changed) cb() }
  return state
}

const watch = (state: ReturnType<typeof collect>) => (cb: () => void) => { state.changed.add(cb); return () => state.changed.delete(cb) }

function pattern (length: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(length)
  for (let i = 0; i < length; i++) bytes[i] = (i * 31 + seed) & 0xff
  return bytes
}

export function runLinkConformance (name: string, setup: () => Promise<LinkPairFixture>): void {
  describe(`${name} (transport conformance)`, () => {
    it('delivers messages in order and intact, both ways, small and large', async () => {
      const { pair: [a, b], teardown } = await setup()
      try {
        const atA = collect(a)
        const atB = collect(b)
        const sizes = [1, 7, 300, 70_000, 1_000_000, 2]
        sizes.forEach((size, i) => { a.send(pattern(size, i)); b.send(pattern(size, i + 100)) })
        await until('every message at b', watch(atB), () => atB.messages.length === sizes.length)
        await until('every message at a', watch(atA), () => atA.messages.length === sizes.length)
        const same = (got: Uint8Array[], seed: number): boolean[] => got.map((message, i) => Buffer.from(message).equals(pattern(sizes[i]!, i + seed)))
        expect(same(atB.messages, 0)).toEqual(sizes.map(() => true))
        expect(same(atA.messages, 100)).toEqual(sizes.map(() => true))
      } finally {
        await teardown?.()
      }
    })

    it('closes both ends once, with the code and reason given, and drops what is sent after', async () => {
      const { pair: [a, b], teardown } = await setup()
      try {
        const atA = collect(a)
        const atB = collect(b)
        a.send(pattern(3, 1))
        await until('the first message', watch(atB), () => atB.messages.length === 1)
        a.close(4000, 'done here')
        await until('both ends to close', cb => { const off = [watch(atA)(cb), watch(atB)(cb)]; return () => off.forEach(f => f()) },
          () => atA.closes.length > 0 && atB.closes.length > 0)
        expect(atB.closes).toEqual([[4000, 'done here']])
        expect(atA.closes).toHaveLength(1)
        a.send(pattern(3, 2))
        b.send(pattern(3, 3))
        a.close(4001, 'again')
        // One more round trip of the event loop and timers: nothing may arrive any more.
        await new Promise(resolve => setTimeout(resolve, 50))
        expect(atB.messages).toHaveLength(1)
        expect(atA.messages).toHaveLength(0)
        expect(atA.closes).toHaveLength(1)
        expect(atB.closes).toHaveLength(1)
      } finally {
        await teardown?.()
      }
    })

    it('carries the sync engine: both sides open, edits flow both ways', async () => {
      const { pair: [a, b], teardown } = await setup()
      const docId = parseDocId('conformance/doc')
      const [left, right] = await Promise.all([LocalDoc.open(new MemoryStore(), docId), LocalDoc.open(new MemoryStore(), docId)])
      try {
        left.ydoc.getText('t').insert(0, 'left ')
        right.ydoc.getText('t').insert(0, 'right ')
        const groups = [new LinkGroup({ self: { peerId: 'left', isRelay: false } }), new LinkGroup({ self: { peerId: 'right', isRelay: false } })]
        groups[0]!.attach(left)
        groups[1]!.attach(right)
        groups[0]!.run(a, 'dial')
        groups[1]!.run(b, 'accept')
        const same = (): boolean => left.ydoc.getText('t').toString() === right.ydoc.getText('t').toString() && left.ydoc.getText('t').length === 11
        const onUpdates = (cb: () => void): (() => void) => { left.ydoc.on('update', cb); right.ydoc.on('update', cb); return () => { left.ydoc.off('update', cb); right.ydoc.off('update', cb) } }
        await until('both documents to converge', onUpdates, same)
        right.ydoc.getText('t').insert(0, 'live ')
        await until('a live edit to cross', onUpdates, () => left.ydoc.getText('t').toString().startsWith('live '))
        expect(Y.encodeStateVector(left.ydoc)).toEqual(Y.encodeStateVector(right.ydoc))
        for (const group of groups) group.close(1000, 'done')
      } finally {
        await Promise.all([left.close(), right.close()])
        await teardown?.()
      }
    })
  })
}
