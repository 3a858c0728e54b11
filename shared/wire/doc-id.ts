/**
 * Document ids name documents on the wire, in URLs and in storage keys, so they are
 * restricted to a safe alphabet: a path of `/`-separated segments made of
 * `A-Z a-z 0-9 - _ . ~ : @ + =`, with no empty, `.` or `..` segment.
 */
import { ProtocolError } from '../errors.js'

/** A validated document id. Obtain one with {@link parseDocId}. */
export type DocId = string & { readonly __brand: 'DocId' }

/** Longest accepted document id, in characters. */
export const MAX_DOC_ID_LENGTH = 256

const SEGMENT = /^[A-Za-z0-9\-_.~:@+=]+$/

/** Thrown by {@link parseDocId}; its message says what is wrong with the id. */
export class InvalidDocIdError extends ProtocolError {
  override name = 'InvalidDocIdError'
}

/** Every valid id matches: segments of the alphabet, none of them `.` or `..` (one test, no split: ids arrive with every message). */
const VALID = /^(?!\.\.?(?:\/|$))[A-Za-z0-9\-_.~:@+=]+(?:\/(?!\.\.?(?:\/|$))[A-Za-z0-9\-_.~:@+=]+)*$/

/** Returns why `id` is not a valid document id, or `null` when it is valid. */
export function docIdProblem (id: string): string | null {
  if (id.length <= MAX_DOC_ID_LENGTH && VALID.test(id)) return null
  if (id.length === 0) return 'document id is empty'
  if (id.length > MAX_DOC_ID_LENGTH) return `document id is longer than ${MAX_DOC_ID_LENGTH} characters`
  for (const segment of id.split('/')) {
    if (segment === '') return 'document id has an empty path segment'
    if (segment === '.' || segment === '..') return 'document id has a "." or ".." path segment'
    if (!SEGMENT.test(segment)) return 'document id has a character outside A-Z a-z 0-9 - _ . ~ : @ + = /'
  }
  return null
}

/** Validates `id` and brands it as a {@link DocId}; throws {@link InvalidDocIdError} otherwise. */
export function parseDocId (id: string): DocId {
  const problem = docIdProblem(id)
  if (problem !== null) throw new InvalidDocIdError(`${problem}: ${JSON.stringify(id.slice(0, 80))}`)
  return id as DocId
}
