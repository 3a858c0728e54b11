import { describe, expect, it } from 'vitest'
import { parseDocId } from '../../shared/wire/doc-id.js'
import { decodeNativeMessage, encodeNativeMessage, type NativeMessage } from '../../shared/wire/native-messages.js'
import { ProtocolError } from '../../shared/errors.js'

const docId = parseDocId('notes/1')
const bytes = new Uint8Array([1, 2, 3])

describe('native protocol codec', () => {
  it.each<NativeMessage>([
    { type: 'hello', version: 2, peer: { peerId: 'r1', isRelay: true }, token: 'secret' },
    { type: 'hello', version: 2, peer: { peerId: 'replica-7', isRelay: false }, token: '' },
    { type: 'welcome', version: 2, peer: { peerId: 'r2', isRelay: true } },
    { type: 'open', docId, stateVector: bytes },
    { type: 'sync', docId, stateVector: bytes, update: new Uint8Array([9, 9]) },
    { type: 'update', docId, seq: 2 ** 40, update: bytes },
    { type: 'ack', docId, seq: 7 },
    { type: 'awareness', docId, update: bytes },
    { type: 'close', docId },
    { type: 'doc-error', docId, code: 4503, reason: 'failed to load' },
    { type: 'cluster', map: { copies: 3, members: [{ id: 'r1', url: 'ws://a' }, { id: 'r2', url: 'ws://b' }] } },
    { type: 'redirect', docId, relayId: 'r3', url: 'ws://c' },
    { type: 'auth', token: 'eyJ...' },
    { type: 'signal', docId, peerId: 'replica-7', writable: true, user: 'alice', payload: bytes },
    { type: 'tombstones', last: true, entries: [{ docId, deletedAt: 1_767_225_600_000 }, { docId: parseDocId('notes/2'), deletedAt: 1 }] },
    { type: 'tombstones', last: false, entries: [] }
  ])('round-trips $type', message => {
    expect(decodeNativeMessage(encodeNativeMessage(message))).toEqual(message)
  })

  it('rejects invalid document ids, truncation, trailing bytes and unknown types', () => {
    const open = encodeNativeMessage({ type: 'open', docId, stateVector: bytes })
    expect(() => decodeNativeMessage(open.slice(0, -1))).toThrow(ProtocolError)
    expect(() => decodeNativeMessage(new Uint8Array([...open, 0]))).toThrow(/trailing/)
    expect(() => decodeNativeMessage(new Uint8Array([99]))).toThrow(/unknown message type/)
    const badId = encodeNativeMessage({ type: 'close', docId: '../x' as never })
    expect(() => decodeNativeMessage(badId)).toThrow(/"\.\."/)
    expect(() => decodeNativeMessage(new Uint8Array([7, 2, 0xc3, 0x28]))).toThrow(/UTF-8/)
  })

  it('encodes tombstones byte by byte as PROTOCOL.md says, and refuses a count larger than the frame', () => {
    const encoded = encodeNativeMessage({ type: 'tombstones', last: true, entries: [{ docId: parseDocId('a'), deletedAt: 300 }] })
    // tag 13, flags 1 (last), 1 entry, docId "a", deletedAt 300 as LEB128 (0xac 0x02)
    expect([...encoded]).toEqual([13, 1, 1, 1, 0x61, 0xac, 0x02])
    expect(() => decodeNativeMessage(new Uint8Array([13, 0, 100]))).toThrow(/more entries than/)
  })
})
