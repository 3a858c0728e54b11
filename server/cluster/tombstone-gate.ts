/**
 * Whether a relay of a cluster may serve a document: only once it has heard the other
 * relays' tombstones since it was last cut off from them, so that a home that was away
 * while a document was deleted never serves the deleted content.
 *
 * A relay hears another when the tombstone exchange on their link has been applied (see
 * `tombstone-exchange.ts`). It is cut off when it starts, and when it has had no link up
 * for {@link GateTiming.cutOffMs}: then it forgets whom it heard, and serves nothing that
 * has another home until it hears a relay again. After that first relay, it settles for
 * {@link GateTiming.graceMs}: meanwhile a document is servable only once every other home
 * of it was heard on its current link (the others have a moment to come back too); then
 * whatever it hears is enough, and a home that stays away is taken as down (it serves
 * nothing either). A load that is not servable waits up to {@link GateTiming.waitMs} and is
 * then refused with 4503 (HTTP 503): try again. With one copy per document (R=1) there is
 * no other home, and nothing to wait for.
 */
import { DocLoadError } from '../../shared/errors.js'
import type { DocId } from '../../shared/wire/doc-id.js'
import type { Cluster } from './cluster.js'
import type { ServeGate } from '../documents/registry.js'

/** The gate's periods, in milliseconds. */
export interface GateTiming {
  /** How long a load waits to become servable before it is refused. */
  waitMs: number
  /** How long a relay that was cut off waits for the homes it has not heard yet. */
  graceMs: number
  /** How long a relay with no link up stays trusted before it counts as cut off. */
  cutOffMs: number
}

/** Default {@link GateTiming}. */
export const GATE_TIMING: GateTiming = { waitMs: 5000, graceMs: 2000, cutOffMs: 5000 }

interface Waiter {
  docId: DocId
  resolve: () => void
  timer: ReturnType<typeof setTimeout>
}

/** See the module comment. */
export class TombstoneGate implements ServeGate {
  /** Relays heard since the last cut-off: true if on their link that is up now. */
  private readonly heard = new Map<string, boolean>()
  private readonly up = new Set<string>()
  private readonly waiters = new Set<Waiter>()
  private graceUntil: number
  private graceTimer: ReturnType<typeof setTimeout> | null = null
  private cutOffTimer: ReturnType<typeof setTimeout> | null = null

  constructor (private readonly cluster: Cluster, private readonly timing: GateTiming = GATE_TIMING) {
    this.graceUntil = 0
  }

  /** The link to `peerId` is up: its tombstones are awaited. */
  linkUp (peerId: string): void {
    if (this.cutOffTimer !== null) clearTimeout(this.cutOffTimer)
    this.cutOffTimer = null
    // The first link after a cut-off: give the others a moment to come back too.
    if (this.heard.size === 0 && this.up.size === 0) this.startGrace()
    this.up.add(peerId)
    if (this.heard.has(peerId)) this.heard.set(peerId, false)
    this.recheck()
  }

  /** The tombstones `peerId` sent when its link came up have been applied here. */
  exchanged (peerId: string): void {
    if (!this.up.has(peerId)) return
    this.heard.set(peerId, true)
    this.recheck()
  }

  /** The link to `peerId` went down. */
  linkDown (peerId: string): void {
    this.up.delete(peerId)
    if (this.heard.has(peerId)) this.heard.set(peerId, false)
    if (this.up.size === 0 && this.cutOffTimer === null) {
      this.cutOffTimer = setTimeout(() => {
        this.cutOffTimer = null
        if (this.up.size === 0) this.heard.clear()
      }, this.timing.cutOffMs)
      this.cutOffTimer.unref?.()
    }
    this.recheck()
  }

  ready (docId: DocId): boolean {
    if (this.heard.size === 0) return this.cluster.otherHomes(docId).length === 0
    if (Date.now() >= this.graceUntil) return true
    return this.cluster.otherHomes(docId).every(home => this.heard.get(home.id) === true)
  }

  whenReady (docId: DocId): Promise<void> {
    if (this.ready(docId)) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        docId,
        resolve,
        timer: setTimeout(() => {
          this.waiters.delete(waiter)
          reject(new DocLoadError(`${docId} is not served until this relay has heard from the other relays whether it was deleted; try again`))
        }, this.timing.waitMs)
      }
      this.waiters.add(waiter)
    })
  }

  /** Stops the timers (the relay is closing); waiting loads are left to time out. */
  close (): void {
    if (this.graceTimer !== null) clearTimeout(this.graceTimer)
    if (this.cutOffTimer !== null) clearTimeout(this.cutOffTimer)
  }

  private startGrace (): void {
    this.graceUntil = Date.now() + this.timing.graceMs
    if (this.graceTimer !== null) clearTimeout(this.graceTimer)
    this.graceTimer = setTimeout(() => {
      this.graceTimer = null
      this.recheck()
    }, this.timing.graceMs)
    this.graceTimer.unref?.()
  }

  private recheck (): void {
    for (const waiter of this.waiters) {
      if (!this.ready(waiter.docId)) continue
      clearTimeout(waiter.timer)
      this.waiters.delete(waiter)
      waiter.resolve()
    }
  }
}
