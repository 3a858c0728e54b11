import { ProtocolError } from '../errors.js'
import * as decoding from 'lib0/decoding'

/**
 * Reads a varint-length-prefixed byte string, checking that the claimed length fits in
 * what is left (lib0 would otherwise read past the end of a view into its backing buffer).
 */
export function readBytes (decoder: decoding.Decoder): Uint8Array {
  const length = readVarUint(decoder)
  if (length > decoder.arr.length - decoder.pos) throw new ProtocolError('length prefix runs past the end of the message')
  return decoding.readUint8Array(decoder, length)
}

/** Reads a varint, turning lib0's errors (end of data, overflow) into a {@link ProtocolError}. */
export function readVarUint (decoder: decoding.Decoder): number {
  try {
    return decoding.readVarUint(decoder)
  } catch {
    throw new ProtocolError('truncated or oversized varint')
  }
}

/** Throws unless the whole message has been read. */
export function expectEnd (decoder: decoding.Decoder): void {
  if (decoder.pos !== decoder.arr.length) throw new ProtocolError('trailing bytes after the message')
}

/** Reads `bytes` with `read`, which must consume them exactly. */
export function decodeExactly<T> (bytes: Uint8Array, read: (decoder: decoding.Decoder) => T): T {
  const decoder = decoding.createDecoder(bytes)
  const value = read(decoder)
  expectEnd(decoder)
  return value
}

/**
 * Copies `data` into a Uint8Array that owns its whole ArrayBuffer, so that no decoder can
 * read past the message into neighbouring bytes of a shared buffer.
 */
export function ownBytes (data: Uint8Array): Uint8Array {
  return Uint8Array.prototype.slice.call(data)
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

/** Reads a varint-length-prefixed UTF-8 string, rejecting invalid UTF-8. */
export function readString (decoder: decoding.Decoder): string {
  const bytes = readBytes(decoder)
  try {
    return utf8.decode(bytes)
  } catch {
    throw new ProtocolError('string is not valid UTF-8')
  }
}
