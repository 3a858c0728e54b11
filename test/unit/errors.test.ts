/**
 * The typed errors apps see: every one is a PetalError with the close code that tells a peer
 * why and whether trying again can help; the replica throws them for wrong calls, for
 * documents closed under a waiting call, and for local writes that fail.
 */
import { afterEach, describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import '../../client/node.js'
import {
  AuthError, ClosedError, DocDeletedError, DocLoadError, LimitError, MovedError, PetalError,
  ProtocolError, RefusedError, Replica, StorageError, UsageError
} from '../../client/index.js'
import { FencedError } from '../../shared/errors.js'
import { CloseCode } from '../../shared/wire/close-codes.js'
import { InvalidDocIdError, parseDocId, type DocId } from '../../shared/wire/doc-id.js'
import { MemoryStore } from '../../shared/storage/memory-store.js'

const replicas: Replica[] = []
afterEach(async () => { await Promise.all(replicas.splice(0).map(r => r.close().catch(() => {}))) })

describe('typed errors', () => {
  it('carry a close code and whether a retry can help', () => {
    const cases: Array<[PetalError, number, boolean]> = [
      [new ProtocolError('bad'), CloseCode.badRequest, false],
      [new InvalidDocIdError('bad id'), CloseCode.badRequest, false],
      [new LimitError(CloseCode.messageTooBig, 'big'), CloseCode.messageTooBig, false],
      [new LimitError(CloseCode.tryAgainLater, 'busy'), CloseCode.tryAgainLater, true],
      [new AuthError(CloseCode.unauthorized, 'no token'), CloseCode.unauthorized, false],
      [new AuthError(CloseCode.peerIdInUse, 'taken'), CloseCode.peerIdInUse, true],
      [new DocLoadError('away'), CloseCode.documentUnavailable, true],
      [new DocDeletedError('d'), CloseCode.deleted, false],
      [new StorageError('disk full'), CloseCode.documentUnavailable, true],
      [new FencedError('fenced'), CloseCode.documentUnavailable, true],
      [new MovedError({ id: 'r2', url: 'ws://127.0.0.1:1' }, 'moved'), CloseCode.documentMoved, true],
      [new RefusedError({ code: CloseCode.forbidden, reason: 'read-only' }, 'refused'), CloseCode.forbidden, false],
      [new RefusedError({ code: CloseCode.documentUnavailable, reason: 'later' }, 'refused'), CloseCode.documentUnavailable, true],
      [new ClosedError('closed'), CloseCode.goingAway, false],
      [new UsageError('wrong call'), CloseCode.badRequest, false]
    ]
    for (const [error, code, retryable] of cases) {
      expect(error, error.name).toBeInstanceOf(PetalError)
      expect(error, error.name).toBeInstanceOf(Error)
      expect([error.name, error.code, error.retryable]).toEqual([error.name, code, retryable])
    }
  })

  it('are what the replica throws for a wrong call', () => {
    const r = new Replica({ store: new MemoryStore() })
    replicas.push(r)
    r.doc('a', { ydoc: new Y.Doc() })
    expect(() => r.doc('a', { ydoc: new Y.Doc() })).toThrow(UsageError)
    expect(() => parseDocId('a//b')).toThrow(ProtocolError)
  })

  it('reject a durable() that waits when its document is closed (ClosedError, not retryable)', async () => {
    const r = new Replica({ store: new MemoryStore(), relays: ['ws://127.0.0.1:1'], minReconnectDelayMs: 1000 })
    replicas.push(r)
    const handle = r.doc('waits')
    await handle.whenLoaded()
    handle.ydoc.getText('t').insert(0, 'x')
    const durable = handle.durable()
    await handle.close()
    const error = await durable.then(() => null, (e: unknown) => e)
    expect(error).toBeInstanceOf(ClosedError)
    expect((error as PetalError).retryable).toBe(false)
  })

  it('reject durable() with a StorageError when the local store fails a write', async () => {
    class FailingStore extends MemoryStore {
      override async append (_docId: DocId, _update: Uint8Array): Promise<void> {
        throw new Error('EIO: i/o error')
      }
    }
    const r = new Replica({ store: new FailingStore(), relays: ['ws://127.0.0.1:1'], minReconnectDelayMs: 1000 })
    replicas.push(r)
    const handle = r.doc('fails')
    await handle.whenLoaded()
    handle.ydoc.getText('t').insert(0, 'x')
    const error = await handle.durable().then(() => null, (e: unknown) => e)
    expect(error).toBeInstanceOf(StorageError)
    expect((error as StorageError).message).toMatch(/could not be saved locally: EIO/)
  })
})
