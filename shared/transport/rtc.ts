/**
 * A {@link Link} over an open RTCDataChannel (browsers, or an injected implementation on
 * Node). Data channels limit message sizes (Chromium: 256 KiB) and have no close codes,
 * so each message is framed: a first byte says whether this is a whole message, a piece
 * of a longer one, or the close (with its code and reason). The other end is a peer that may
 * lie: a message it sends in pieces may not grow past the largest one this side accepts.
 */
import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import type { Link } from './link.js'

/** Bytes of a message per data-channel message, at most. */
export const RTC_CHUNK_BYTES = 16 * 1024

const LAST = 0
const MORE = 1
const CLOSE = 2

/** What a Link needs of a data channel (the WHATWG RTCDataChannel has it). */
export interface DataChannel {
  binaryType: string
  readonly readyState: string
  send(data: Uint8Array): void
  close(): void
  onmessage: ((event: { data: unknown }) => void) | null
  onclose: ((event: unknown) => void) | null
}

/** A Link over `channel`, which must be open, taking messages of up to `maxMessageBytes` (1009 beyond). */
export function rtcLink (channel: DataChannel, maxMessageBytes: number): Link {
  channel.binaryType = 'arraybuffer'
  let closed = false
  let pieces: Uint8Array[] = []
  let piecesBytes = 0
  const end = (code: number, reason: string): void => {
    if (closed) return
    closed = true
    link.onClose(code, reason)
  }
  const sendFrame = (kind: number, body: Uint8Array): void => {
    if (channel.readyState !== 'open') return
    const frame = new Uint8Array(body.length + 1)
    frame[0] = kind
    frame.set(body, 1)
    try {
      channel.send(frame)
    } catch {
      end(1006, 'data channel failed') // closed under us: the close event may not have come yet
    }
  }
  const link: Link = {
    send (message) {
      if (closed) return
      for (let at = 0; at < message.length || at === 0; at += RTC_CHUNK_BYTES) {
        const last = at + RTC_CHUNK_BYTES >= message.length
        sendFrame(last ? LAST : MORE, message.subarray(at, at + RTC_CHUNK_BYTES))
        if (last) break
      }
    },
    close (code, reason) {
      if (closed) return
      sendFrame(CLOSE, encoding.encode(encoder => {
        encoding.writeVarUint(encoder, code)
        encoding.writeVarString(encoder, reason)
      }))
      // Let the close frame leave before the channel goes.
      setTimeout(() => channel.close(), 0)
      end(code, reason)
    },
    onMessage: () => {},
    onClose: () => {}
  }
  channel.onmessage = event => {
    if (closed || !(event.data instanceof ArrayBuffer) || event.data.byteLength === 0) return
    const frame = new Uint8Array(event.data)
    const body = frame.subarray(1)
    if ((frame[0] === MORE || frame[0] === LAST) && piecesBytes + body.length > maxMessageBytes) {
      pieces = []
      return link.close(1009, `message larger than ${maxMessageBytes} bytes`)
    }
    if (frame[0] === MORE) {
      pieces.push(body.slice())
      piecesBytes += body.length
    } else if (frame[0] === LAST) {
      if (pieces.length === 0) return link.onMessage(body.slice())
      pieces.push(body)
      const whole = new Uint8Array(piecesBytes + body.length)
      let at = 0
      for (const piece of pieces) {
        whole.set(piece, at)
        at += piece.length
      }
      pieces = []
      piecesBytes = 0
      link.onMessage(whole)
    } else if (frame[0] === CLOSE) {
      let code = 1000
      let reason = ''
      try {
        const decoder = decoding.createDecoder(body)
        code = decoding.readVarUint(decoder)
        reason = decoding.readVarString(decoder)
      } catch {}
      channel.close()
      end(code, reason)
    }
  }
  channel.onclose = () => end(1006, 'data channel closed')
  return link
}
