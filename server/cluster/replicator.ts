/**
 * Replication of documents between their homes, over the relay links.
 *
 * - A loaded document has a sync session with each of its other homes whose link is up,
 *   opened from this side (so the handshake hands over, in a numbered update, whatever the
 *   other home lacks) and answered from the other (so this side gets what it lacks). Once
 *   live, every stored update is forwarded, numbered, and acknowledged once committed.
 * - A home that may lack something (its session ended before it acknowledged everything,
 *   or the link was down) is remembered; when its link comes back, documents not in
 *   memory are pushed to it (loaded, handed over, acknowledged, released).
 * - Write quorum: {@link confirm} resolves once W-1 other homes acknowledged everything
 *   this relay forwarded to them for the document, so with this relay's own commit a
 *   client's update is on W disks before the client hears of it.
 */
import type { Logger } from 'pino'
import type { DocId } from '../../shared/wire/doc-id.js'
import type { PeerConnection } from '../../shared/sync/connection.js'
import type { SyncSession } from '../../shared/sync/session.js'
import type { Cluster } from './cluster.js'
import type { DocumentRegistry } from '../documents/registry.js'
import type { DocReplication, RelayDocument } from '../documents/relay-document.js'

/** How long a home may take to take a pushed document before the push is retried later. */
const PUSH_DEADLINE_MS = 10_000

/** Documents pushed to a home at the same time after its link came back. */
const PUSH_CONCURRENCY = 16

interface QuorumWaiter {
  /** Per other home, the session and sequence number it must acknowledge, or null until it has a synced session. */
  targets: Map<string, { session: SyncSession, seq: number } | null>
  resolve: () => void
}

/** See the module comment. */
export class Replicator {
  private readonly links = new Map<string, PeerConnection>()
  /** Per home, documents it may lack that need a push when its link is up. */
  private readonly behind = new Map<string, Set<DocId>>()
  private readonly waiters = new Map<DocId, QuorumWaiter[]>()
  private readonly loaded = new Map<DocId, RelayDocument>()

  constructor (private readonly cluster: Cluster, private readonly registry: DocumentRegistry, private readonly logger: Logger) {}

  /** A document loaded: replicate it while it is in memory. */
  attach (doc: RelayDocument): void {
    this.loaded.set(doc.docId, doc)
    const replication: DocReplication = {
      confirm: () => this.confirm(doc.docId),
      stored: () => this.openSessions(doc),
      progressed: session => {
        if (session.peer.isRelay && session.synced && session.caughtUp) this.behind.get(session.peer.peerId)?.delete(doc.docId)
        this.recheckWaiters(doc.docId)
      },
      ended: session => {
        if (session.peer.isRelay && !(session.synced && session.caughtUp)) this.markBehind(session.peer.peerId, doc.docId)
        this.recheckWaiters(doc.docId)
      }
    }
    doc.replication = replication
    this.openSessions(doc)
  }

  /** A document is being evicted: end its sessions with other relays. */
  detach (doc: RelayDocument): void {
    this.loaded.delete(doc.docId)
    for (const connection of this.links.values()) connection.closeDocument(doc.docId)
    doc.replication = null
  }

  /** The link to `peerId` is up: sync every loaded document it is a home of, and push what it may lack. */
  linkUp (peerId: string, connection: PeerConnection): void {
    this.links.set(peerId, connection)
    for (const doc of this.loaded.values()) this.openSessions(doc)
    const behind = [...this.behind.get(peerId) ?? []].filter(docId => !this.loaded.has(docId))
    void this.pushAll(peerId, behind)
  }

  /** The link to `peerId` went down (its sessions have ended). */
  linkDown (peerId: string, connection: PeerConnection): void {
    if (this.links.get(peerId) === connection) this.links.delete(peerId)
  }

  /**
   * Makes sure home `peerId` holds everything this relay has of `docId`: loads it, hands
   * it over, and resolves once the home acknowledged. Rejects if the link is down or the
   * home does not answer in time.
   */
  async push (peerId: string, docId: DocId): Promise<void> {
    const connection = this.links.get(peerId)
    if (connection === undefined) throw new Error(`link to ${peerId} is down`)
    const doc = await this.registry.acquire(docId)
    let timer: ReturnType<typeof setTimeout> | undefined
    try {
      const session = connection.open(doc)
      const deadline = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`timed out pushing ${docId} to ${peerId}`)), PUSH_DEADLINE_MS) })
      await Promise.race([session.whenCaughtUp(), deadline])
      this.behind.get(peerId)?.delete(docId)
    } finally {
      clearTimeout(timer)
      this.registry.release(docId)
    }
  }

  /** Resolves once W-1 other homes acknowledged everything forwarded to them so far for `docId`. */
  confirm (docId: DocId): Promise<void> {
    if (this.cluster.writeQuorum - 1 <= 0) return Promise.resolve()
    const targets = new Map<string, { session: SyncSession, seq: number } | null>()
    for (const home of this.cluster.otherHomes(docId)) targets.set(home.id, this.target(home.id, docId))
    return new Promise(resolve => {
      const waiter = { targets, resolve }
      if (!this.met(waiter)) this.waitersOf(docId).push(waiter)
    })
  }

  /** Opens a session on every up link to a home of `doc` that has none opened from here. */
  private openSessions (doc: RelayDocument): void {
    for (const home of this.cluster.otherHomes(doc.docId)) {
      const connection = this.links.get(home.id)
      if (connection !== undefined && connection.session(doc.docId)?.opener !== true) connection.open(doc)
    }
  }

  private async pushAll (peerId: string, docIds: DocId[]): Promise<void> {
    let next = 0
    const worker = async (): Promise<void> => {
      while (next < docIds.length && this.links.has(peerId)) {
        const docId = docIds[next++]!
        await this.push(peerId, docId).catch(error => this.logger.warn({ err: error, doc: docId, peer: peerId }, 'could not catch a relay up; retrying when its link is back'))
      }
    }
    await Promise.all(Array.from({ length: PUSH_CONCURRENCY }, worker))
  }

  /** What a quorum waiter needs from `peerId` now: everything sent on a synced session, or null if there is none. */
  private target (peerId: string, docId: DocId): { session: SyncSession, seq: number } | null {
    const session = this.links.get(peerId)?.session(docId) ?? null
    return session !== null && session.synced && !session.ended ? { session, seq: session.sentSeq } : null
  }

  private markBehind (peerId: string, docId: DocId): void {
    let docs = this.behind.get(peerId)
    if (docs === undefined) {
      docs = new Set()
      this.behind.set(peerId, docs)
    }
    docs.add(docId)
  }

  private met (waiter: QuorumWaiter): boolean {
    let confirmed = 0
    for (const target of waiter.targets.values()) {
      if (target !== null && target.session.ackedSeq >= target.seq) confirmed++
    }
    if (confirmed < this.cluster.writeQuorum - 1) return false
    waiter.resolve()
    return true
  }

  /** Re-checks `docId`'s waiters: a session synced, acknowledged or ended. */
  private recheckWaiters (docId: DocId): void {
    const waiters = this.waiters.get(docId)
    if (waiters === undefined) return
    for (const waiter of waiters) {
      for (const [peerId, target] of waiter.targets) {
        // A session that ended before acknowledging is replaced by the next one's handshake.
        if (target === null || (target.session.ended && target.session.ackedSeq < target.seq)) waiter.targets.set(peerId, this.target(peerId, docId))
      }
    }
    const remaining = waiters.filter(waiter => !this.met(waiter))
    if (remaining.length === 0) this.waiters.delete(docId)
    else this.waiters.set(docId, remaining)
  }

  private waitersOf (docId: DocId): QuorumWaiter[] {
    let waiters = this.waiters.get(docId)
    if (waiters === undefined) {
      waiters = []
      this.waiters.set(docId, waiters)
    }
    return waiters
  }
}
