/**
 * Tombstones between the relays of a cluster, for every document, loaded or not. When a
 * relay link comes up, each side sends every tombstone it holds (`tombstones` messages,
 * the last one marked); a deletion made later goes to every linked relay at once. A relay
 * applies a tombstone for a document it is a home of or holds a copy of: its copy is
 * deleted and erased, and the tombstone kept. Once everything the other relay sent when
 * the link came up has been applied, the gate hears of it (see `tombstone-gate.ts`).
 */
import type { Logger } from 'pino'
import type { DocStore } from '../../shared/storage/store.js'
import type { PeerConnection } from '../../shared/sync/connection.js'
import { CloseCode } from '../../shared/wire/close-codes.js'
import type { DocId } from '../../shared/wire/doc-id.js'
import type { NativeMessage, TombstoneEntry } from '../../shared/wire/native-messages.js'
import type { DocumentRegistry } from '../documents/registry.js'
import { listTombstones } from '../documents/tombstones.js'
import type { Cluster } from './cluster.js'

/** Tombstones per message: ids are at most 256 characters, so a message stays well under 100 KiB. */
const PER_MESSAGE = 256

/** What {@link TombstoneExchange} works with. */
export interface ExchangeOptions {
  cluster: Cluster
  registry: DocumentRegistry
  store: DocStore
  logger: Logger
  /** Everything `peerId` sent when its link came up has been applied. */
  heard: (peerId: string) => void
}

/** See the module comment. */
export class TombstoneExchange {
  private readonly links = new Map<string, PeerConnection>()
  /** Per link, the application of what it sent so far (messages are applied in order). */
  private readonly applied = new WeakMap<PeerConnection, Promise<void>>()
  /** Deletions this exchange is applying: the relay that sent them has them already. */
  private readonly applying = new Set<DocId>()

  constructor (private readonly options: ExchangeOptions) {}

  /** The link to `peerId` is up: sends it every tombstone held here. */
  linkUp (peerId: string, connection: PeerConnection): void {
    this.links.set(peerId, connection)
    this.sendAll(connection).catch((error: unknown) => {
      // The other relay does not hear this one on this link, and serves nothing it needs it for.
      this.options.logger.error({ err: error, peer: peerId }, 'could not send the tombstones to another relay')
    })
  }

  /** The link to `peerId` went down. */
  linkDown (peerId: string, connection: PeerConnection): void {
    if (this.links.get(peerId) === connection) this.links.delete(peerId)
  }

  /** A document was deleted here: every linked relay learns it now. */
  deleted (docId: DocId, deletedAt: number): void {
    if (this.applying.has(docId)) return
    for (const connection of this.links.values()) connection.send({ type: 'tombstones', last: false, entries: [{ docId, deletedAt }] })
  }

  /** Tombstones from `peerId` on `connection`. */
  receive (peerId: string, connection: PeerConnection, message: Extract<NativeMessage, { type: 'tombstones' }>): void {
    if (this.links.get(peerId) !== connection) return
    const previous = this.applied.get(connection) ?? Promise.resolve()
    const next = previous.then(async () => {
      await this.apply(peerId, message.entries)
      if (message.last && this.links.get(peerId) === connection) this.options.heard(peerId)
    }).catch((error: unknown) => {
      this.options.logger.error({ err: error, peer: peerId }, 'could not apply the tombstones of another relay')
      // Not heard on this link: a new link sends them all again.
      connection.close(CloseCode.tryAgainLater, 'could not apply the tombstones')
    })
    this.applied.set(connection, next)
  }

  private async sendAll (connection: PeerConnection): Promise<void> {
    const tombstones = await listTombstones(this.options.store)
    if (connection.closed) return
    let start = 0
    do {
      const entries = tombstones.slice(start, start + PER_MESSAGE).map(({ docId, deletedAt }) => ({ docId, deletedAt }))
      start += PER_MESSAGE
      connection.send({ type: 'tombstones', last: start >= tombstones.length, entries })
    } while (start < tombstones.length)
  }

  /** Deletes here what `entries` name and this relay keeps: a copy it holds, or a document it is a home of. */
  private async apply (peerId: string, entries: TombstoneEntry[]): Promise<void> {
    const { cluster, registry, logger } = this.options
    let deleted = 0
    await Promise.all(entries.map(async ({ docId, deletedAt }) => {
      const stat = await registry.stat(docId)
      if (stat?.deleted === true || (stat === null && !cluster.isHome(docId))) return
      this.applying.add(docId)
      try {
        if (await registry.delete(docId, deletedAt)) deleted++
      } finally {
        this.applying.delete(docId)
      }
    }))
    if (deleted > 0) logger.info({ peer: peerId, documents: deleted }, 'deleted documents another relay deleted')
  }
}
