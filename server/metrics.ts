/**
 * A relay's metrics, served as Prometheus text on `GET /metrics` (through prom-client, in a
 * registry of the relay's own, so that several relays in one process do not mix): open
 * connections by kind, documents in memory, updates and bytes received, commit and
 * acknowledgement latency, compactions, connections closed by close code, cluster members,
 * how long the write quorum takes, the bytes of HTTP request bodies held, and webhook calls
 * waiting; where documents are placed by load (relays on PostgreSQL), the relay's load and
 * the documents moved.
 */
import type * as PromClient from 'prom-client'
import { requirePeer } from '../shared/node-peers.js'
import { CloseCode } from '../shared/wire/close-codes.js'
import type { CommitInfo } from '../shared/storage/sqlite-store.js'
import type { DocumentObserver } from './documents/relay-document.js'
import { NO_LOAD, type LoadHealth } from './placement/load-report.js'

/** What the relay reports when scraped. */
export interface RelayGauges {
  /** Open connections: native replicas, stock y-websocket clients, links to other relays. */
  connections: { native: number, 'y-websocket': number, relay: number }
  /** Documents in memory. */
  documents: number
  /** Bytes of HTTP request bodies held while they arrive. */
  bodyBytes: number
  /** Cluster members, and those with a link up; null for a relay on its own. */
  members: { total: number, linked: number } | null
  /** Webhook calls waiting (retries included) and in flight, over all URLs; null without webhooks. */
  webhooks: { queued: number, inFlight: number } | null
  /** The relay's load, where documents are placed by load; absent elsewhere (and then not exported). */
  load?: LoadHealth
}

/**
 * The close codes counted under their own label: PetalDB's, and those the relay's side sets
 * for a close frame without a code (1005) and for a connection dropped without one (1006).
 * Any other counts as `other`: a client picks the code it closes with (any of 3000-4999),
 * and each label value is a series of its own that a scraper keeps.
 */
const LABELLED_CLOSE_CODES = new Set<number>([...Object.values(CloseCode), 1005, 1006])

/** Buckets (seconds) for commit, acknowledgement and replication latency: 0.5 ms to 10 s. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

const NO_GAUGES: RelayGauges = { connections: { native: 0, 'y-websocket': 0, relay: 0 }, documents: 0, bodyBytes: 0, members: null, webhooks: null }

/** See the module comment. */
export class RelayMetrics implements DocumentObserver {
  private readonly registry: PromClient.Registry
  private readonly updates: PromClient.Counter<'source'>
  private readonly bytes: PromClient.Counter<'source'>
  private readonly commitSeconds: PromClient.Histogram
  private readonly ackSeconds: PromClient.Histogram
  private readonly replicationSeconds: PromClient.Histogram
  private readonly compactions: PromClient.Counter
  private readonly closes: PromClient.Counter<'code'>
  /**
   * Updates and bytes received, by source, counted here and handed to prom-client only when
   * scraped: its inc() hashes the labels on every call, a cost per update on the hot path.
   */
  private readonly receivedCounts = { client: { updates: 0, bytes: 0 }, relay: { updates: 0, bytes: 0 }, http: { updates: 0, bytes: 0 } }

  /** Where the gauges are read when scraped; nothing until the relay's parts exist. */
  private readGauges: () => RelayGauges = () => NO_GAUGES
  private readonly prom: typeof PromClient
  private loadRegistered = false

  constructor () {
    const gauges = (): RelayGauges => this.readGauges()
    const prom = this.prom = requirePeer<typeof PromClient>('prom-client', 'Relay metrics')
    const registers = [this.registry = new prom.Registry()]
    const counts = Object.entries(this.receivedCounts)
    this.updates = new prom.Counter({
      name: 'petaldb_updates_received_total',
      help: 'Updates received, by source (client, relay, http)',
      labelNames: ['source'],
      registers,
      collect () {
        this.reset()
        for (const [source, count] of counts) if (count.updates > 0) this.inc({ source }, count.updates)
      }
    })
    this.bytes = new prom.Counter({
      name: 'petaldb_update_bytes_received_total',
      help: 'Bytes of updates received, by source',
      labelNames: ['source'],
      registers,
      collect () {
        this.reset()
        for (const [source, count] of counts) if (count.bytes > 0) this.inc({ source }, count.bytes)
      }
    })
    this.commitSeconds = new prom.Histogram({ name: 'petaldb_commit_seconds', help: 'Duration of a storage commit (a group of writes, fsync included)', buckets: LATENCY_BUCKETS, registers })
    this.ackSeconds = new prom.Histogram({ name: 'petaldb_ack_seconds', help: 'From receiving an update to it being durable (committed, and on the write quorum in a cluster)', buckets: LATENCY_BUCKETS, registers })
    this.replicationSeconds = new prom.Histogram({ name: 'petaldb_replication_seconds', help: 'From storing an update to the write quorum confirming it (replication lag)', buckets: LATENCY_BUCKETS, registers })
    this.compactions = new prom.Counter({ name: 'petaldb_compactions_total', help: 'Document logs compacted into snapshots', registers })
    this.closes = new prom.Counter({ name: 'petaldb_connections_closed_total', help: 'WebSocket connections closed, by close code (4xxx and 1008/1009/1013 are refusals; codes PetalDB does not define count as other)', labelNames: ['code'], registers })
    new prom.Gauge({
      name: 'petaldb_connections',
      help: 'Open connections, by kind',
      labelNames: ['kind'],
      registers,
      collect () {
        for (const [kind, count] of Object.entries(gauges().connections)) this.set({ kind }, count)
      }
    })
    new prom.Gauge({ name: 'petaldb_documents', help: 'Documents in memory', registers, collect () { this.set(gauges().documents) } })
    new prom.Gauge({ name: 'petaldb_http_body_bytes', help: 'Bytes of HTTP request bodies held while they arrive', registers, collect () { this.set(gauges().bodyBytes) } })
    /** A gauge labelled `state`, set from `read()` when scraped (left out while it reads null). */
    const byState = (name: string, help: string, read: () => Record<string, number> | null): void => {
      new prom.Gauge({
        name,
        help,
        labelNames: ['state'],
        registers,
        collect () {
          for (const [state, value] of Object.entries(read() ?? {})) this.set({ state }, value)
        }
      })
    }
    byState('petaldb_cluster_members', 'Members of the cluster (state="linked": those with a link up to this relay; this relay counts as linked)', () => gauges().members)
    byState('petaldb_webhook_deliveries', 'Webhook calls waiting (state="queued", retries included) and in flight, over all webhook URLs', () => {
      const deliveries = gauges().webhooks
      return deliveries === null ? null : { queued: deliveries.queued, in_flight: deliveries.inFlight }
    })
  }

  /**
   * Reads the gauges from `read` when scraped (the relay's parts that report them exist after
   * its metrics). The load metrics exist only for a relay whose gauges report a load.
   */
  gaugesFrom (read: () => RelayGauges): void {
    this.readGauges = read
    if (read().load !== undefined && !this.loadRegistered) this.registerLoad()
  }

  private registerLoad (): void {
    this.loadRegistered = true
    const prom = this.prom
    const registers = [this.registry]
    const load = (): LoadHealth | undefined => this.readGauges().load
    const gauge = (name: string, help: string, read: (figures: LoadHealth) => number): void => {
      new prom.Gauge({ name, help, registers, collect () { this.set(read(load() ?? NO_LOAD)) } })
    }
    gauge('petaldb_load_updates_per_second', 'Updates received per second (moving average over a few seconds), as published for load placement', figures => figures.updatesPerSecond)
    gauge('petaldb_load_bytes_per_second', 'Bytes of updates received per second (moving average)', figures => figures.bytesPerSecond)
    gauge('petaldb_event_loop_utilization', 'Event-loop utilization between the last two heartbeats (0 to 1)', figures => figures.elu)
    gauge('petaldb_load_document_bytes', 'Bytes of the documents in memory', figures => figures.documentBytes)
    gauge('petaldb_placed_documents', 'Documents placed on this relay by load', figures => figures.placedHere)
    new prom.Counter({
      name: 'petaldb_placement_moves_total',
      help: 'Documents moved by load: away from this relay (direction="out") and to it (direction="in")',
      labelNames: ['direction'],
      registers,
      collect () {
        const { moves } = load() ?? NO_LOAD
        this.reset()
        this.inc({ direction: 'out' }, moves.out)
        this.inc({ direction: 'in' }, moves.in)
      }
    })
  }

  received (source: 'client' | 'relay' | 'http', bytes: number): void {
    const count = this.receivedCounts[source]
    count.updates++
    count.bytes += bytes
  }

  durable ({ seconds }: { seconds: number }): void {
    this.ackSeconds.observe(seconds)
  }

  replicated (seconds: number): void {
    this.replicationSeconds.observe(seconds)
  }

  /** A storage commit finished. */
  committed (info: CommitInfo): void {
    this.commitSeconds.observe(info.seconds)
    if (info.compactions > 0) this.compactions.inc(info.compactions)
  }

  /** A WebSocket connection closed with `code` (see {@link LABELLED_CLOSE_CODES}). */
  closed (code: number): void {
    this.closes.inc({ code: LABELLED_CLOSE_CODES.has(code) ? String(code) : 'other' })
  }

  /** The Prometheus text exposition, and its content type. */
  async exposition (): Promise<{ contentType: string, text: string }> {
    return { contentType: this.registry.contentType, text: await this.registry.metrics() }
  }
}
