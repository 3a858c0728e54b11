/**
 * Moves documents after the member list changed. Every stored document is pushed to each
 * of its current replicas (a state-vector handshake, acknowledged once committed there);
 * a relay that is no longer a replica deletes its copy only after every replica has
 * acknowledged it. Documents whose replicas cannot be reached yet are retried until done.
 * The member list of the last completed pass is kept in the data directory, so a restart
 * with an unchanged list costs nothing.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Logger } from 'pino'
import type { DocId } from '../../shared/wire/doc-id.js'
import type { DocStore } from '../../shared/storage/store.js'
import type { Cluster } from './cluster.js'
import type { DocumentRegistry } from '../documents/registry.js'
import type { Replicator } from './replicator.js'

/** Options of {@link Rebalancer}. */
export interface RebalancerOptions {
  cluster: Cluster
  store: DocStore
  registry: DocumentRegistry
  replicator: Replicator
  logger: Logger
  /** Where the member list of the last completed pass is kept; none: always rebalance. */
  dataDir?: string
  /** Documents moved at the same time. Default 16. */
  concurrency?: number
  /** Pause before retrying documents whose replicas were unreachable. Default 500 ms. */
  retryMs?: number
}

/** See the module comment. */
export class Rebalancer {
  private stopped = false
  /** Resolves when the pass has finished (or the relay stopped). */
  readonly done: Promise<void>

  constructor (private readonly options: RebalancerOptions) {
    this.done = this.run()
  }

  stop (): void {
    this.stopped = true
  }

  private get membershipFile (): string | null {
    return this.options.dataDir === undefined ? null : join(this.options.dataDir, 'cluster-members.json')
  }

  private membership (): string {
    const { cluster } = this.options
    return JSON.stringify({ replicas: cluster.copies, members: cluster.members.map(member => member.id) })
  }

  private async run (): Promise<void> {
    const file = this.membershipFile
    if (file !== null && existsSync(file) && readFileSync(file, 'utf8') === this.membership()) return
    const { store, logger } = this.options
    const started = performance.now()
    let queue = await store.list()
    const total = queue.length
    let handedOff = 0
    while (queue.length > 0 && !this.stopped) {
      const failed: DocId[] = []
      await this.inBatches(queue, async docId => {
        try {
          if (await this.move(docId)) handedOff++
        } catch {
          failed.push(docId)
        }
      })
      queue = failed
      if (queue.length > 0) await new Promise(resolve => setTimeout(resolve, this.options.retryMs ?? 500))
    }
    if (this.stopped) return
    if (file !== null) writeFileSync(file, this.membership())
    logger.info({ documents: total, handedOff, ms: Math.round(performance.now() - started) }, 'rebalance complete')
  }

  /** Pushes `docId` to its replicas; deletes the local copy if this relay is not one. Returns whether it did. */
  private async move (docId: DocId): Promise<boolean> {
    const { cluster, replicator, registry, store } = this.options
    await Promise.all(cluster.otherHomes(docId).map(peer => replicator.push(peer.id, docId)))
    if (cluster.isHome(docId) || !registry.evictIfIdle(docId)) return false
    await store.delete(docId)
    return true
  }

  private async inBatches (docIds: DocId[], task: (docId: DocId) => Promise<void>): Promise<void> {
    let next = 0
    const worker = async (): Promise<void> => {
      while (next < docIds.length && !this.stopped) await task(docIds[next++]!)
    }
    await Promise.all(Array.from({ length: this.options.concurrency ?? 16 }, worker))
  }
}
