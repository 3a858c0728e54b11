/**
 * The decision of load placement, as a pure function: given the live relays' last load
 * reports, this relay's own documents, the placements made recently and what this relay
 * did before, which of its documents it hands to which relay now. Each relay decides only
 * about the documents it serves, so two relays never contend for one.
 *
 * The rule, for updates/s and then for bytes in memory: a relay whose load is above `ratio`
 * times the live relays' mean (and above a minimum) for `sustainReports` reports in a row
 * starts moving, and goes on until it is at most `goalRatio` times the mean (hysteresis).
 * It moves its hottest (biggest) documents, each to the least loaded relay, and only when
 * the move strictly lowers the imbalance: the target stays below the source after it, by a
 * margin (the hottest that also leaves the target within the goal comes first). So a document that is most of its relay's load stays there: one document is one
 * unit (nor are documents that carry a tiny share of it moved instead). Stability: at most `maxMovesPerMinute` moves; a moved document is not moved again,
 * by anyone, before `cooldownMs`; after a move the relay waits for the target's next
 * report before deciding again; and until a target's average has caught up, what was
 * moved to it counts on it (the part its average does not show yet).
 */
import type { DocLoad } from './load-report.js'
import type { PlacementSettings } from './options.js'

/** A live relay's last load report, as the planner uses it. */
export interface RelayLoad {
  id: string
  /** The report's number (see LoadReport.seq). */
  seq: number
  updatesPerSecond: number
  /** Bytes of documents in memory. */
  documentBytes: number
}

/** A document placed on a relay by load recently (by any relay), with the load it carried. */
export interface RecentPlacement {
  doc: string
  relay: string
  /** Milliseconds since it was placed. */
  ageMs: number
  updatesPerSecond: number
  bytes: number
}

/** A decision: hand `doc` to relay `to`. */
export interface Move {
  doc: string
  to: string
  updatesPerSecond: number
  bytes: number
  /** Which load it lowers. */
  reason: 'rate' | 'bytes'
}

type Dimension = 'rate' | 'bytes'

/** What a relay remembers between rounds (returned anew by {@link planMoves}). */
export interface PlanHistory {
  /** The own report the last round was decided on. */
  seq: number
  /** Consecutive reports over the ratio. */
  over: Record<Dimension, number>
  /** Whether the relay is moving documents (until it reaches the goal). */
  active: Record<Dimension, boolean>
  /** Moves made within the cooldown: `at` on the caller's clock, `targetSeq` the target's report number then. */
  moves: ReadonlyArray<{ doc: string, to: string, at: number, targetSeq: number }>
}

/** A relay's history before its first round. */
export const NO_HISTORY: PlanHistory = { seq: 0, over: { rate: 0, bytes: 0 }, active: { rate: false, bytes: false }, moves: [] }

/** What {@link planMoves} decides on. */
export interface PlanInput {
  /** This relay's id. */
  self: string
  /** The live relays with a valid report, this one included. */
  relays: readonly RelayLoad[]
  /** This relay's documents that may move: its hottest and its biggest. */
  own: readonly DocLoad[]
  /** Placements younger than the cooldown, on any relay. */
  recent: readonly RecentPlacement[]
  /** Now, in milliseconds (the clock of the history's `at`). */
  now: number
}

/** Both loads of a relay as the planner counts them. */
interface Load { id: string, rate: number, bytes: number }

const MINUTE_MS = 60_000

/** How long a move's target may take to report before the relay decides again without it. */
const WAIT_LIMIT_MS = 10_000

/** A document carrying less than this share of its relay's load is not worth a move (the churn would buy nothing). */
const MIN_SHARE = 0.02

const valueOf = (load: { updatesPerSecond: number, bytes: number } | Load, dimension: Dimension): number =>
  dimension === 'rate' ? ('rate' in load ? load.rate : load.updatesPerSecond) : load.bytes

/** See the module comment. Returns the moves to make now and the history to pass next time. */
export function planMoves (input: PlanInput, history: PlanHistory, settings: PlacementSettings): { moves: Move[], history: PlanHistory } {
  const { now } = input
  const me = input.relays.find(relay => relay.id === input.self)
  if (me === undefined || me.seq <= history.seq) return { moves: [], history }
  const moves = history.moves.filter(move => now - move.at < settings.cooldownMs)
  const others = input.relays.filter(relay => relay.id !== input.self)
  if (others.length === 0) return { moves: [], history: { ...NO_HISTORY, seq: me.seq, moves } }

  // What was placed on a relay counts there in full until its moving average shows it.
  const loads = new Map<string, Load>(input.relays.map(relay => [relay.id, { id: relay.id, rate: relay.updatesPerSecond, bytes: relay.documentBytes }]))
  for (const placed of input.recent) {
    const load = loads.get(placed.relay)
    if (load === undefined || placed.relay === input.self) continue
    const unseen = Math.exp(-placed.ageMs / settings.windowMs)
    load.rate += placed.updatesPerSecond * unseen
    load.bytes += placed.bytes * unseen
  }
  const self = loads.get(input.self)!
  const mean = (dimension: Dimension): number => [...loads.values()].reduce((sum, load) => sum + valueOf(load, dimension), 0) / loads.size
  const minimum = (dimension: Dimension): number => dimension === 'rate' ? settings.minUpdatesPerSecond : settings.minBytes
  const over = { ...history.over }
  const active = { ...history.active }
  for (const dimension of ['rate', 'bytes'] as const) {
    const value = valueOf(self, dimension)
    const above = value >= minimum(dimension)
    over[dimension] = above && value > settings.ratio * mean(dimension) ? over[dimension] + 1 : 0
    active[dimension] = over[dimension] >= settings.sustainReports || (active[dimension] && above && value > settings.goalRatio * mean(dimension))
  }
  const next: PlanHistory = { seq: me.seq, over, active, moves }
  // After a move, the target's next report comes before the next decision (for a while: a target that stops reporting blocks nothing for long).
  const waiting = moves.some(move => {
    const target = others.find(relay => relay.id === move.to)
    return target !== undefined && target.seq <= move.targetSeq && now - move.at < Math.max(WAIT_LIMIT_MS, 3 * settings.windowMs)
  })
  if (waiting || (!active.rate && !active.bytes)) return { moves: [], history: next }

  let budget = settings.maxMovesPerMinute - moves.filter(move => now - move.at < MINUTE_MS).length
  const cooling = new Set([...moves.map(move => move.doc), ...input.recent.filter(placed => placed.ageMs < settings.cooldownMs).map(placed => placed.doc)])
  const decided: Move[] = []
  const means = { rate: mean('rate'), bytes: mean('bytes') }
  for (const dimension of ['rate', 'bytes'] as const) {
    if (!active[dimension] || decided.length > 0) continue
    const other: Dimension = dimension === 'rate' ? 'bytes' : 'rate'
    const candidates = [...input.own].sort((a, b) => valueOf(b, dimension) - valueOf(a, dimension))
    const goal = settings.goalRatio * means[dimension]
    while (budget > 0 && valueOf(self, dimension) > goal) {
      const target = leastLoaded(loads, input.self, dimension)
      if (target === null) break
      const movable = candidates.filter(doc => {
        const size = valueOf(doc, dimension)
        if (size <= MIN_SHARE * valueOf(self, dimension) || cooling.has(doc.doc)) return false
        // Strictly better: the target stays below the source, by a margin; a document that is most of the load stays.
        if (valueOf(target, dimension) + size + settings.margin * means[dimension] >= valueOf(self, dimension) - size) return false
        // Nor may it make the target a hot spot of the other load.
        const otherSize = valueOf(doc, other)
        const targetOther = valueOf(target, other) + otherSize
        return targetOther <= Math.max(settings.ratio * means[other], minimum(other)) || targetOther <= valueOf(self, other) - otherSize
      })
      // The hottest that leaves the target within the goal, else the hottest that is better at all.
      const doc = movable.find(candidate => valueOf(target, dimension) + valueOf(candidate, dimension) <= goal) ?? movable[0]
      if (doc === undefined) break
      decided.push({ doc: doc.doc, to: target.id, updatesPerSecond: doc.updatesPerSecond, bytes: doc.bytes, reason: dimension })
      cooling.add(doc.doc)
      budget--
      self.rate -= doc.updatesPerSecond
      self.bytes -= doc.bytes
      target.rate += doc.updatesPerSecond
      target.bytes += doc.bytes
    }
  }
  const seqOf = (id: string): number => others.find(relay => relay.id === id)!.seq
  return {
    moves: decided,
    history: { ...next, moves: [...moves, ...decided.map(move => ({ doc: move.doc, to: move.to, at: now, targetSeq: seqOf(move.to) }))] }
  }
}

/** The relay other than `self` with the least `dimension` load (ties: the smallest id). */
function leastLoaded (loads: Map<string, Load>, self: string, dimension: Dimension): Load | null {
  let best: Load | null = null
  for (const load of loads.values()) {
    if (load.id === self) continue
    if (best === null || valueOf(load, dimension) < valueOf(best, dimension) || (valueOf(load, dimension) === valueOf(best, dimension) && load.id < best.id)) best = load
  }
  return best
}
