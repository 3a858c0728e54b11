/**
 * How deep values may nest. Yjs reads and writes `any` values recursively and writes JSON
 * content back with `JSON.stringify`, which recurses too, as do y-protocols clients
 * re-encoding presence: a value a relay accepted must not overflow the stack of a replica
 * with a smaller one than the relay's, or of the relay itself when it merges or re-encodes.
 */

/** Arrays and objects a value may nest; one more level is refused. */
export const MAX_NESTING = 256

/** Whether the JSON text `json` (valid JSON: it has been parsed) nests arrays and objects deeper than {@link MAX_NESTING}. */
export function nestsTooDeep (json: string): boolean {
  // Deeper nesting needs at least one opening bracket per level.
  if (json.length <= 2 * MAX_NESTING) return false
  let depth = 0
  for (let i = 0; i < json.length; i++) {
    const c = json.charCodeAt(i)
    if (c === 0x22) { // a string: skip to its closing quote, past escaped characters
      for (i++; i < json.length && json.charCodeAt(i) !== 0x22; i++) if (json.charCodeAt(i) === 0x5c) i++
    } else if (c === 0x5b || c === 0x7b) { // [ {
      if (++depth > MAX_NESTING) return true
    } else if (c === 0x5d || c === 0x7d) depth-- // ] }
  }
  return false
}

/** The error for a value nested deeper than {@link MAX_NESTING}. */
export const tooDeep = (what: string): string => `${what} nests arrays and objects more than ${MAX_NESTING} deep`
