/**
 * A small synthetic editing trace, made from a seed: turns of single edits (insert a few
 * characters or delete a few at a random place), in the shape of the real traces the
 * benchmarks read, and the text after every prefix of it.
 */
import { prng } from './prng.js'

/** One edit: at `pos`, delete `deleted` characters, then insert `inserted`. */
export type Edit = [pos: number, deleted: number, inserted: string]

export interface SyntheticTrace {
  /** The edits, grouped into event-loop turns. */
  turns: Edit[][]
  /** `texts[k]` is the text after the first `k` edits. */
  texts: string[]
}

/** About `edits` edits in turns of 1 to `maxTurn` edits. */
export function syntheticTrace (seed: number, edits: number, maxTurn = 40): SyntheticTrace {
  const random = prng(seed)
  const turns: Edit[][] = []
  const texts = ['']
  let text = ''
  while (texts.length <= edits) {
    const turn: Edit[] = []
    for (let n = 1 + random.int(maxTurn); n > 0; n--) {
      // Every edit changes the text, so each is one local change of a replica.
      const deletes = text.length > 0 && random.next() < 0.3
      const pos = random.int(text.length + (deletes ? 0 : 1))
      const edit: Edit = deletes
        ? [pos, Math.min(1 + random.int(3), text.length - pos), '']
        : [pos, 0, String.fromCharCode(97 + random.int(26)).repeat(1 + random.int(3))]
      text = text.slice(0, edit[0]) + edit[2] + text.slice(edit[0] + edit[1])
      turn.push(edit)
      texts.push(text)
    }
    turns.push(turn)
  }
  return { turns, texts }
}
