/**
 * How many local changes each writer of a document made and how many of them a relay
 * acknowledged: the replica's durability counters, kept in the document's store metadata.
 * Every replica instance writes its own entry (two tabs on one IndexedDB database, or two
 * replicas on one SQLite file, never share a counter), and an instance that loaded other
 * writers' entries and then made everything it loaded durable marks them so. Entries with
 * nothing pending are dropped. So after a reload `pending` counts every change in the
 * store that no relay acknowledged, whoever made it.
 *
 * Metadata that does not decode is refused (a {@link DocLoadError}: the document does not
 * open), never read as no counters: that would make `pending` undercount and `durable()`
 * resolve for changes no relay has.
 */
import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import { DocLoadError } from '../shared/errors.js'

/** One writer's counts. */
export interface WriterCounts {
  /** Local changes made. */
  local: number
  /** How many of them are known to be durable on a relay. */
  durable: number
}

/** Every writer's counts, by writer id. */
export type Counters = Map<string, WriterCounts>

/** Marks the encoding (format 1), so that a later one can be told apart. */
const FORMAT = [0, 1]

function encodeCounters (counters: Counters): Uint8Array {
  return encoding.encode(encoder => {
    for (const byte of FORMAT) encoding.writeUint8(encoder, byte)
    encoding.writeVarUint(encoder, counters.size)
    for (const [writer, { local, durable }] of counters) {
      encoding.writeVarString(encoder, writer)
      encoding.writeVarUint(encoder, local)
      encoding.writeVarUint(encoder, durable)
    }
  })
}

/**
 * The counters kept in a document's metadata (none for null). Throws a {@link DocLoadError}
 * if `meta` is not counters of this format, whole and nothing else.
 */
export function decodeCounters (meta: Uint8Array | null): Counters {
  const counters: Counters = new Map()
  if (meta === null) return counters
  if (meta[0] !== FORMAT[0] || meta[1] !== FORMAT[1]) throw unreadable(`unknown format ${[...meta.subarray(0, FORMAT.length)].join('.')}`)
  try {
    const decoder = decoding.createDecoder(meta.subarray(FORMAT.length))
    for (let count = decoding.readVarUint(decoder); count > 0; count--) {
      counters.set(decoding.readVarString(decoder), { local: decoding.readVarUint(decoder), durable: decoding.readVarUint(decoder) })
    }
    if (decoding.hasContent(decoder)) throw new Error('bytes after the last writer')
  } catch (error) {
    throw unreadable((error as Error).message)
  }
  return counters
}

function unreadable (why: string): DocLoadError {
  return new DocLoadError(`the stored acknowledgement counters do not decode (${why}): pending changes cannot be counted`)
}

/** Changes of `counts` not known to be durable. */
export const pendingOf = ({ local, durable }: WriterCounts): number => Math.max(0, local - durable)

/**
 * The metadata update a writer makes: its own entry set to `own` (counts only grow), the
 * `loaded` entries marked durable up to the counts it loaded if `loadedDurable`, and
 * entries with nothing pending dropped.
 */
export function updateCounters (writer: string, own: WriterCounts, loaded: Counters, loadedDurable: boolean) {
  return (meta: Uint8Array | null): Uint8Array | null => {
    const counters = decodeCounters(meta)
    const stored = counters.get(writer)
    counters.set(writer, { local: Math.max(own.local, stored?.local ?? 0), durable: Math.max(own.durable, stored?.durable ?? 0) })
    if (loadedDurable) {
      for (const [other, counts] of loaded) {
        const current = counters.get(other)
        if (current !== undefined) current.durable = Math.max(current.durable, counts.local)
      }
    }
    for (const [id, counts] of counters) {
      if (pendingOf(counts) === 0) counters.delete(id)
    }
    return counters.size === 0 ? null : encodeCounters(counters)
  }
}
