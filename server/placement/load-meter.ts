/**
 * Measures a relay's load per document: updates and bytes received, counted on the hot path
 * (one Map lookup and two additions per update; a counter is allocated once per document
 * that receives updates, not per update), turned into rates by an exponentially weighted
 * moving average when sampled (on each heartbeat), and the event loop's utilization between
 * samples. The relay's rate is the sum of its documents' rates, so a document it hands over
 * stops counting at once (see {@link forget}); the relay that takes it over sees its rate
 * rise as its own average catches up.
 */
import { performance, type EventLoopUtilization } from 'node:perf_hooks'
import type { DocLoad } from './load-report.js'

/** One document's counts since the last sample, and its rates. */
class DocCounter {
  updates = 0
  bytes = 0
  rate = 0
  byteRate = 0
}

/** A rate this low counts as idle: its counter is dropped, and made again on the next update. */
const IDLE_RATE = 0.01

/** What a sample measured. */
export interface MeterSample {
  /** Updates per second, summed over documents. */
  updatesPerSecond: number
  /** Bytes of updates per second, summed over documents. */
  bytesPerSecond: number
  /** Event-loop utilization since the previous sample, 0..1. */
  elu: number
}

/** See the module comment. */
export class LoadMeter {
  private readonly docs = new Map<string, DocCounter>()
  private sampledAt: number
  private loop: EventLoopUtilization
  private last: MeterSample = { updatesPerSecond: 0, bytesPerSecond: 0, elu: 0 }

  /** `windowMs`: the time constant of the moving average. */
  constructor (private readonly windowMs: number, now = performance.now()) {
    this.sampledAt = now
    this.loop = performance.eventLoopUtilization()
  }

  /** An update of `bytes` was received for `docId` (the hot path: no allocation once the document is counted). */
  count (docId: string, bytes: number): void {
    let counter = this.docs.get(docId)
    if (counter === undefined) {
      counter = new DocCounter()
      this.docs.set(docId, counter)
    }
    counter.updates++
    counter.bytes += bytes
  }

  /** `docId` left this relay: it no longer counts in its load. */
  forget (docId: string): void {
    this.docs.delete(docId)
  }

  /** Folds the counts since the last sample into the rates; returns the relay's. */
  sample (now = performance.now()): MeterSample {
    const seconds = (now - this.sampledAt) / 1000
    if (seconds <= 0) return this.last
    this.sampledAt = now
    const alpha = 1 - Math.exp(-(seconds * 1000) / this.windowMs)
    let updatesPerSecond = 0
    let bytesPerSecond = 0
    for (const [docId, counter] of this.docs) {
      counter.rate += alpha * (counter.updates / seconds - counter.rate)
      counter.byteRate += alpha * (counter.bytes / seconds - counter.byteRate)
      const idle = counter.updates === 0 && counter.rate < IDLE_RATE
      counter.updates = 0
      counter.bytes = 0
      if (idle) {
        this.docs.delete(docId)
        continue
      }
      updatesPerSecond += counter.rate
      bytesPerSecond += counter.byteRate
    }
    const loop = performance.eventLoopUtilization()
    const elu = performance.eventLoopUtilization(loop, this.loop).utilization
    this.loop = loop
    this.last = { updatesPerSecond, bytesPerSecond, elu: Number.isFinite(elu) ? Math.min(1, Math.max(0, elu)) : 0 }
    return this.last
  }

  /** The last sample. */
  get current (): MeterSample {
    return this.last
  }

  /** Updates per second of `docId` at the last sample (0 if it is idle or unknown). */
  rateOf (docId: string): number {
    return this.docs.get(docId)?.rate ?? 0
  }

  /** The `k` documents with the highest rate, descending; `bytesOf` gives each one's size (null: it is not in memory, left out). */
  hottest (k: number, bytesOf: (docId: string) => number | null): DocLoad[] {
    const loads: DocLoad[] = []
    for (const [doc, counter] of this.docs) {
      if (counter.rate < IDLE_RATE) continue
      const bytes = bytesOf(doc)
      if (bytes !== null) loads.push({ doc, updatesPerSecond: counter.rate, bytes })
    }
    return topBy(loads, k, load => load.updatesPerSecond)
  }
}

/** The `k` entries of `items` with the largest `key`, descending. */
export function topBy<T> (items: T[], k: number, key: (item: T) => number): T[] {
  return items.sort((a, b) => key(b) - key(a)).slice(0, k)
}
