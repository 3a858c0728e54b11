import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import * as syncProtocol from 'y-protocols/sync'
import * as encoding from 'lib0/encoding'
import { decodeYMessage, encodeAwarenessMessage, encodeQueryAwareness, encodeSyncStep1, encodeSyncStep2, encodeSyncUpdate } from '../../shared/wire/y-messages.js'
import { decodeAwarenessUpdate } from '../../shared/wire/awareness.js'
import { decodeStateVector } from '../../shared/wire/state-vector.js'
import { validateUpdate } from '../../shared/validation/update-validation.js'
import { ProtocolError } from '../../shared/errors.js'

function sampleUpdate (): Uint8Array {
  const doc = new Y.Doc()
  doc.getText('t').insert(0, 'hello')
  doc.getMap('m').set('k', { nested: [1, 2] })
  return Y.encodeStateAsUpdate(doc)
}

describe('y-websocket codec', () => {
  it('round-trips every message type', () => {
    const update = sampleUpdate()
    const sv = Y.encodeStateVector(new Y.Doc())
    expect(decodeYMessage(encodeSyncStep1(sv))).toEqual({ type: 'sync-step1', stateVector: sv })
    expect(decodeYMessage(encodeSyncStep2(update))).toEqual({ type: 'sync-step2', update })
    expect(decodeYMessage(encodeSyncUpdate(update))).toEqual({ type: 'sync-update', update })
    expect(decodeYMessage(encodeAwarenessMessage(new Uint8Array([0])))).toEqual({ type: 'awareness', update: new Uint8Array([0]) })
    expect(decodeYMessage(encodeQueryAwareness())).toEqual({ type: 'query-awareness' })
  })

  it('matches the bytes y-protocols writes', () => {
    const doc = new Y.Doc()
    doc.getText('t').insert(0, 'x')
    const reference = encoding.encode(encoder => {
      encoding.writeVarUint(encoder, 0)
      syncProtocol.writeSyncStep1(encoder, doc)
    })
    expect(encodeSyncStep1(Y.encodeStateVector(doc))).toEqual(reference)
  })

  it.each([
    ['empty frame', []],
    ['unknown message type', [9]],
    ['unknown sync subtype', [0, 7, 0]],
    ['truncated varint', [0, 0x80]],
    ['length past the end', [0, 2, 5, 1, 2]],
    ['trailing bytes', [3, 0]],
    ['oversized varint', [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]]
  ])('rejects a frame with %s', (_name, frame) => {
    expect(() => decodeYMessage(new Uint8Array(frame))).toThrow(ProtocolError)
  })
})

describe('payload validation', () => {
  it('accepts a real update and rejects every truncation of it', () => {
    const update = sampleUpdate()
    expect(() => validateUpdate(update)).not.toThrow()
    for (let length = 1; length < update.length; length++) {
      expect(() => validateUpdate(update.slice(0, length)), `truncated to ${length}`).toThrow(ProtocolError)
    }
  })

  it('rejects empty structs and empty deletions, which Yjs never makes (a relay would find them new forever)', () => {
    // One GC struct of length 0 (client 9, clock 0), empty delete set.
    expect(() => validateUpdate(new Uint8Array([1, 1, 9, 0, 0, 0, 0]))).toThrow(/invalid struct/)
    // No structs; a deletion of length 0 (client 7, clock 0).
    expect(() => validateUpdate(new Uint8Array([0, 1, 7, 1, 0, 0]))).toThrow(/invalid deletion/)
  })

  it('rejects an update claiming a huge number of structs in a few bytes, quickly', () => {
    const bomb = new Uint8Array([1, 0xff, 0xff, 0xff, 0x7f, 1, 0])
    const start = performance.now()
    expect(() => validateUpdate(bomb)).toThrow(ProtocolError)
    expect(performance.now() - start).toBeLessThan(1000)
  })

  it('decodes state vectors and awareness updates strictly', () => {
    const doc = new Y.Doc()
    doc.getText('t').insert(0, 'abc')
    expect(decodeStateVector(Y.encodeStateVector(doc))).toEqual(new Map([[doc.clientID, 3]]))
    expect(() => decodeStateVector(new Uint8Array([5, 1]))).toThrow(ProtocolError)
    const awareness = encoding.encode(encoder => {
      encoding.writeVarUint(encoder, 1)
      encoding.writeVarUint(encoder, 42)
      encoding.writeVarUint(encoder, 3)
      encoding.writeVarString(encoder, JSON.stringify({ user: 'ann' }))
    })
    expect(decodeAwarenessUpdate(awareness)).toEqual([{ clientId: 42, clock: 3, state: { user: 'ann' } }])
    expect(() => decodeAwarenessUpdate(awareness.slice(0, -1))).toThrow(ProtocolError)
    expect(() => decodeAwarenessUpdate(new Uint8Array([1, 1, 1, 1, 0x7b]))).toThrow(/JSON/)
    expect(() => decodeAwarenessUpdate(new Uint8Array([1, 1, 1, 1, 0xff]))).toThrow(/UTF-8/)
  })
})
