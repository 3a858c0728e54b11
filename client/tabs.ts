/**
 * Tabs of one origin that share an IndexedDB database sync with each other directly over
 * a BroadcastChannel, with no relay: each pair of tabs gets a link (see
 * `shared/transport/broadcast.ts`) running the native protocol, and every document open in
 * both syncs over it. Tabs are peers, not relays: nothing they acknowledge is durable.
 */
import { CloseCode } from '../shared/wire/close-codes.js'
import type { DocId } from '../shared/wire/doc-id.js'
import type { PeerInfo } from '../shared/wire/native-messages.js'
import { BroadcastLinks, type BroadcastChannelConstructor } from '../shared/transport/broadcast.js'
import { LinkGroup } from './link-group.js'
import type { LocalDoc } from './local-doc.js'

/** See the module comment. */
export class Tabs {
  private readonly group: LinkGroup
  private readonly links: BroadcastLinks

  constructor (channel: string, self: PeerInfo, BroadcastChannel?: BroadcastChannelConstructor) {
    this.group = new LinkGroup({ self })
    this.links = new BroadcastLinks({
      channel,
      selfId: self.peerId,
      onLink: (link, dialer) => { this.group.run(link, dialer ? 'dial' : 'accept') },
      ...(BroadcastChannel === undefined ? {} : { BroadcastChannel })
    })
  }

  attach (doc: LocalDoc): void {
    this.group.attach(doc)
  }

  detach (docId: DocId): void {
    this.group.detach(docId)
  }

  close (): void {
    this.group.close(CloseCode.goingAway, 'tab closing')
    this.links.close()
  }
}
