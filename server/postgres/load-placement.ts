/**
 * Load placement for a relay on PostgreSQL: it measures its load (placement/load-meter.ts),
 * publishes it on every heartbeat, and, once it has read every live relay's report, decides
 * which of its documents to hand over (placement/plan.ts). The hand-over itself, and the
 * routing that follows placements, are the relay's (postgres-node.ts); this part knows the
 * figures and the decisions.
 */
import { performance } from 'node:perf_hooks'
import type { DocId } from '../../shared/wire/doc-id.js'
import type { DocumentRegistry } from '../documents/registry.js'
import { LoadMeter, topBy } from '../placement/load-meter.js'
import type { DocLoad, LoadHealth, LoadReport } from '../placement/load-report.js'
import { NO_HISTORY, planMoves, type Move, type PlanHistory } from '../placement/plan.js'
import type { PlacementSettings } from '../placement/options.js'
import type { LiveMember } from './membership.js'
import { Placements } from './placements.js'

/** Documents of its own the planner is shown: the hottest and the biggest, this many of each. */
const CANDIDATES = 64

/** See the module comment. */
export class LoadPlacement {
  readonly meter: LoadMeter
  readonly placements: Placements
  private history: PlanHistory = NO_HISTORY
  /** Report numbers count up across restarts: they start from the wall clock (ms), and a relay reports far less than once per ms. */
  private seq = Date.now()
  private candidates: DocLoad[] = []
  private documentBytes = 0
  /** Documents that arrived here by a move, counted once each. */
  private readonly arrived = new Set<DocId>()
  movesOut = 0
  movesIn = 0

  constructor (
    readonly settings: PlacementSettings,
    /** Whether this relay moves documents (it measures and publishes its load either way). */
    readonly moves: boolean,
    private readonly registry: DocumentRegistry,
    private readonly selfId: string,
    private readonly connections: () => number,
    placements: Placements
  ) {
    this.meter = new LoadMeter(settings.windowMs)
    this.placements = placements
  }

  /** The report of this heartbeat: samples the meter and sizes the documents in memory. */
  report (): LoadReport {
    const sample = this.meter.sample()
    const sizes: DocLoad[] = []
    let documentBytes = 0
    for (const docId of this.registry.docIds) {
      const doc = this.registry.peek(docId)
      if (doc === null) continue
      const { bytes } = doc.stats
      documentBytes += bytes
      sizes.push({ doc: docId, updatesPerSecond: this.meter.rateOf(docId), bytes })
    }
    const bytesOf = (docId: string): number | null => this.registry.peek(docId as DocId)?.stats.bytes ?? null
    const hot = this.meter.hottest(CANDIDATES, bytesOf)
    const big = topBy(sizes, CANDIDATES, load => load.bytes)
    this.candidates = [...new Map([...hot, ...big].map(load => [load.doc, load])).values()]
    this.documentBytes = documentBytes
    const k = this.settings.hotDocuments
    return {
      seq: ++this.seq,
      updatesPerSecond: sample.updatesPerSecond,
      bytesPerSecond: sample.bytesPerSecond,
      elu: sample.elu,
      connections: this.connections(),
      documentBytes,
      hot: hot.slice(0, k),
      big: big.slice(0, k)
    }
  }

  /** After a heartbeat read `members` (their reports included): the moves to make now. */
  plan (members: readonly LiveMember[]): Move[] {
    if (!this.moves) return []
    const relays = members.flatMap(member => member.load === null ? [] : [{ id: member.id, seq: member.load.seq, updatesPerSecond: member.load.updatesPerSecond, documentBytes: member.load.documentBytes }])
    const own = this.candidates.filter(load => this.registry.peek(load.doc as DocId) !== null)
    const { moves, history } = planMoves({ self: this.selfId, relays, own, recent: this.placements.recent(this.settings.cooldownMs), now: performance.now() }, this.history, this.settings)
    this.history = history
    return moves
  }

  /** `docId` loaded here: counted as moved in if it was placed here by load. */
  loaded (docId: DocId): void {
    const placement = this.placements.get(docId)
    if (placement?.relay !== this.selfId || placement.movedFrom === this.selfId || this.arrived.has(docId)) return
    this.arrived.add(docId)
    this.movesIn++
  }

  /** `docId` left this relay (moved out or evicted). */
  left (docId: DocId): void {
    this.meter.forget(docId)
    this.arrived.delete(docId)
  }

  get figures (): LoadHealth {
    const { updatesPerSecond, bytesPerSecond, elu } = this.meter.current
    return { updatesPerSecond, bytesPerSecond, elu, documentBytes: this.documentBytes, placedHere: this.placements.countOn(this.selfId), moves: { out: this.movesOut, in: this.movesIn } }
  }
}
