/**
 * What a relay publishes of its load on every heartbeat, and the validation of what it
 * reads of the others'. Reports come from relays on the same database, trusted; still, a
 * row another version wrote, or a bad one, must never crash a relay: every number read is
 * checked (finite, not negative, bounded) and a report that fails is ignored (that relay
 * counts as unknown, never as idle).
 */

/** A relay's load as a deployment that places documents by load measures it (relays on PostgreSQL). */
export interface LoadHealth {
  /** Updates received per second (moving average over a few seconds). */
  updatesPerSecond: number
  /** Bytes of updates received per second (moving average). */
  bytesPerSecond: number
  /** Event-loop utilization between the last two heartbeats, 0..1. */
  elu: number
  /** Bytes of the documents in memory. */
  documentBytes: number
  /** Documents placed on this relay by load. */
  placedHere: number
  /** Documents moved away from this relay by load, and to it, since it started. */
  moves: { out: number, in: number }
}

/** The load of a relay that has measured nothing yet. */
export const NO_LOAD: LoadHealth = Object.freeze({ updatesPerSecond: 0, bytesPerSecond: 0, elu: 0, documentBytes: 0, placedHere: 0, moves: Object.freeze({ out: 0, in: 0 }) })

/** One document's load, as a relay measures it. */
export interface DocLoad {
  doc: string
  /** Updates per second received (moving average). */
  updatesPerSecond: number
  /** Bytes stored for the document, as held in memory. */
  bytes: number
}

/** A relay's load, as it publishes it. */
export interface LoadReport {
  /** Number of the report, counting up from 1 with each heartbeat of one run of the relay. */
  seq: number
  /** Updates received per second (moving average over a few seconds). */
  updatesPerSecond: number
  /** Bytes of updates received per second (moving average). */
  bytesPerSecond: number
  /** Event-loop utilization since the previous report, 0..1. */
  elu: number
  /** Open client connections. */
  connections: number
  /** Bytes of the documents it holds in memory. */
  documentBytes: number
  /** Its hottest documents (by updates/s), descending. */
  hot: DocLoad[]
  /** Its biggest documents (by bytes), descending. */
  big: DocLoad[]
}

/** Above any real figure: a larger one is a bad row. */
const MAX_FIGURE = 1e15
/** Documents per list read at most. */
const MAX_LISTED = 64
/** The longest document id read (ids are validated when served; this bounds a bad row). */
const MAX_DOC_ID = 1024

/** `value` as a finite number in [0, max], or null. */
export function figure (value: unknown, max = MAX_FIGURE): number | null {
  const n = typeof value === 'string' ? Number(value) : value
  return typeof n === 'number' && Number.isFinite(n) && n >= 0 && n <= max ? n : null
}

function docLoads (value: unknown): DocLoad[] | null {
  if (!Array.isArray(value)) return null
  const loads: DocLoad[] = []
  for (const entry of value.slice(0, MAX_LISTED)) {
    if (typeof entry !== 'object' || entry === null) return null
    const { doc, updatesPerSecond, bytes } = entry as Record<string, unknown>
    const rate = figure(updatesPerSecond)
    const size = figure(bytes)
    if (typeof doc !== 'string' || doc.length === 0 || doc.length > MAX_DOC_ID || rate === null || size === null) return null
    loads.push({ doc, updatesPerSecond: rate, bytes: size })
  }
  return loads
}

/** A report read from the database (parsed JSON), validated; null if anything in it is wrong. */
export function parseLoadReport (raw: unknown): LoadReport | null {
  if (typeof raw !== 'object' || raw === null) return null
  const r = raw as Record<string, unknown>
  const seq = figure(r.seq, Number.MAX_SAFE_INTEGER)
  const updatesPerSecond = figure(r.updatesPerSecond)
  const bytesPerSecond = figure(r.bytesPerSecond)
  const elu = figure(r.elu, 1)
  const connections = figure(r.connections)
  const documentBytes = figure(r.documentBytes)
  const hot = docLoads(r.hot)
  const big = docLoads(r.big)
  if (seq === null || updatesPerSecond === null || bytesPerSecond === null || elu === null || connections === null || documentBytes === null || hot === null || big === null) return null
  return { seq, updatesPerSecond, bytesPerSecond, elu, connections, documentBytes, hot, big }
}
