/**
 * Which connection holds which peer id, on one node that accepts connections. Signaling is
 * addressed by peer id and stamped with the sender's, so an id must name one authenticated
 * connection: whoever says HELLO first with an id holds it until its connection closes, and
 * a second live connection claiming it is refused (4409). Relay links are not bound: they
 * are not clients, and signals never go to them.
 */
import type { DocId } from '../wire/doc-id.js'
import type { PeerConnection } from '../sync/connection.js'

/** A client connection bound to its peer id. */
export interface BoundClient {
  readonly peerId: string
  readonly connection: PeerConnection
  /** What the connection's token allows now (a refresh may change it), and its subject. */
  readonly auth: {
    canRead(docId: DocId): boolean
    canWrite(docId: DocId): boolean
    readonly user: string | undefined
  }
}

/** See the module comment. One per listening node, shared by all its native connections. */
export class PeerIds {
  private readonly bound = new Map<string, BoundClient>()

  /** Binds `client.peerId` to `client`; false if another client holds that id. */
  bind (client: BoundClient): boolean {
    const holder = this.bound.get(client.peerId)
    if (holder !== undefined && holder !== client) return false
    this.bound.set(client.peerId, client)
    return true
  }

  /** Releases `client`'s id, if `client` holds it. */
  release (client: BoundClient): void {
    if (this.bound.get(client.peerId) === client) this.bound.delete(client.peerId)
  }

  /** The client that holds `peerId`, if any. */
  get (peerId: string): BoundClient | undefined {
    return this.bound.get(peerId)
  }

  /** Ids bound now. */
  get size (): number {
    return this.bound.size
  }
}
