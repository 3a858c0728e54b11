/**
 * Checks UTF-8 as lib0 reads strings (a fatal `TextDecoder`: the WHATWG decoder, which
 * refuses overlong forms, surrogates, code points past U+10FFFF and cut-off sequences)
 * without making the string: a relay reads every string of every update it receives and
 * keeps none of them, and for short strings a loop over the bytes costs a fraction of a
 * decoder call and the string it allocates.
 */

/**
 * The length in UTF-16 code units (what `String.length` says) of the string that
 * `bytes[start, end)` encode, or -1 if they are not valid UTF-8.
 */
export function utf16Length (bytes: Uint8Array, start: number, end: number): number {
  let units = 0
  let i = start
  while (i < end) {
    const b = bytes[i]!
    if (b < 0x80) {
      i++
      units++
      continue
    }
    // The sequence's length and the range its second byte must lie in (narrower after E0, ED, F0, F4).
    let size: number
    let low = 0x80
    let high = 0xbf
    if (b >= 0xc2 && b <= 0xdf) size = 2
    else if (b >= 0xe0 && b <= 0xef) {
      size = 3
      if (b === 0xe0) low = 0xa0
      else if (b === 0xed) high = 0x9f
    } else if (b >= 0xf0 && b <= 0xf4) {
      size = 4
      if (b === 0xf0) low = 0x90
      else if (b === 0xf4) high = 0x8f
    } else return -1
    if (i + size > end) return -1
    const second = bytes[i + 1]!
    if (second < low || second > high) return -1
    for (let k = 2; k < size; k++) {
      const next = bytes[i + k]!
      if (next < 0x80 || next > 0xbf) return -1
    }
    i += size
    // Code points past U+FFFF take a surrogate pair.
    units += size === 4 ? 2 : 1
  }
  return units
}
