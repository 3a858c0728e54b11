/**
 * A replica's connection to a relay or a peer: one native link at a time, re-established
 * with exponential backoff and full jitter, cycling through the given URLs. Every document
 * attached to it is opened on each new link (a fresh handshake in both directions merges
 * what either side did while apart); documents the other side opens are served too, if
 * they are attached (see {@link LinkGroup}).
 */
import { CloseCode } from '../shared/wire/close-codes.js'
import type { DocId } from '../shared/wire/doc-id.js'
import type { Link } from '../shared/transport/link.js'
import type { ClusterMap } from '../shared/placement.js'
import type { PeerInfo } from '../shared/wire/native-messages.js'
import type { PeerConnection, ControlMessage } from '../shared/sync/connection.js'
import { LinkGroup } from './link-group.js'
import { ProtocolError } from '../shared/errors.js'
import type { LocalDoc } from './local-doc.js'

/** Connection state of one URL. */
export type LinkStatus = 'connecting' | 'online' | 'offline'

/** Options of {@link Dialer}. */
export interface DialerOptions {
  /** URLs to dial, tried in turn. */
  urls: string[]
  /** Opens a link to a URL. */
  connect: (url: string) => Promise<Link>
  /** This replica, as told to the other side. */
  self: PeerInfo
  /** Reports each status change of a URL. */
  onStatus: (url: string, status: LinkStatus) => void
  /** A relay sent its cluster map. */
  onCluster?: (map: ClusterMap) => void
  /** A relay sent a document elsewhere. */
  onRedirect?: (docId: DocId, url: string) => void
  /** A document was opened on a link. */
  onOpen?: (docId: DocId, connection: PeerConnection) => void
  /** A signaling message arrived (WebRTC offers, answers and candidates, relayed). */
  onSignal?: (message: Extract<ControlMessage, { type: 'signal' }>, connection: PeerConnection) => void
  /** The token to present in HELLO ('' for none); called for every new link. */
  token?: () => string | Promise<string>
  /** First reconnect delay bound, doubled per failed attempt. Default 100 ms. */
  minDelayMs?: number
  /** Largest reconnect delay bound. Default 10 s. */
  maxDelayMs?: number
  /** Resolves once the device is online again; null while it is online (a browser's `navigator.onLine`). Default: always online. */
  untilOnline?: () => Promise<void> | null
}

/** See the module comment. */
export class Dialer {
  private readonly group: LinkGroup
  private current: PeerConnection | null = null
  private currentStatus: LinkStatus = 'connecting'
  private closed = false
  private wake: (() => void) | null = null
  /** Failed attempts since the last link that got online (the backoff grows with them). */
  private failures = 0
  private readonly running: Promise<void>

  constructor (private readonly options: DialerOptions) {
    this.group = new LinkGroup({
      self: options.self,
      ...(options.token === undefined ? {} : { token: options.token }),
      ...(options.onOpen === undefined ? {} : { onOpen: options.onOpen }),
      onControl: (message, connection) => {
        if (message.type === 'cluster') return options.onCluster?.(message.map)
        if (message.type === 'redirect') return options.onRedirect?.(message.docId, message.url)
        if (message.type === 'signal' && options.onSignal !== undefined) return options.onSignal(message, connection)
        throw new ProtocolError(`unexpected ${message.type} message`)
      }
    })
    // Not from inside the constructor: status callbacks may reach code still constructing this dialer's owner.
    this.running = Promise.resolve().then(() => this.run())
  }

  /** The status of the latest attempt. */
  get status (): LinkStatus {
    return this.currentStatus
  }

  /** The live connection, if it is ready. */
  get connection (): PeerConnection | null {
    return this.current?.ready === true ? this.current : null
  }

  /** Documents attached to this dialer. */
  get attached (): LocalDoc[] {
    return this.group.attached
  }

  /** Syncs `doc` over this dialer's links from now on. */
  attach (doc: LocalDoc): void {
    this.group.attach(doc)
  }

  /** Stops syncing `docId` (telling the other side). */
  detach (docId: DocId): void {
    this.group.detach(docId)
  }

  /** Sends a fresh token on the current link (the relay keeps the open documents). */
  refreshToken (token: string): void {
    this.connection?.send({ type: 'auth', token })
  }

  /**
   * Drops the current link, if any, and dials again at once, with the backoff reset: for
   * when the network is known to have changed (a browser's `online` event), where waiting
   * for a dead socket to time out, or for the next backoff step, would only delay.
   */
  reconnect (): void {
    if (this.closed) return
    this.failures = 0
    this.current?.close(CloseCode.normal, 'reconnecting') // browsers refuse to send codes below 3000 but 1000
    this.wake?.()
  }

  /** Closes the link and stops reconnecting. */
  async close (): Promise<void> {
    this.closed = true
    this.wake?.()
    this.group.close(CloseCode.normal, 'replica closing')
    await this.running
  }

  private async run (): Promise<void> {
    const { urls } = this.options
    for (let attempt = 0; !this.closed; attempt++) {
      const url = urls[attempt % urls.length]!
      await this.untilOnline(url)
      if (this.closed) break
      this.setStatus(url, 'connecting')
      let link: Link
      try {
        link = await this.options.connect(url)
      } catch {
        this.setStatus(url, 'offline')
        await this.pause(this.failures++)
        continue
      }
      if (this.closed) {
        link.close(CloseCode.normal, 'replica closing')
        break
      }
      const wasOnline = await this.serve(url, link)
      this.setStatus(url, 'offline')
      if (wasOnline) this.failures = 0
      await this.pause(this.failures++)
    }
  }

  /** Runs the protocol on `link` until it closes; resolves whether it ever got online. */
  private serve (url: string, link: Link): Promise<boolean> {
    return new Promise(resolve => {
      let welcomed = false
      const connection = this.group.run(link, 'dial', {
        onReady: () => {
          welcomed = true
          this.setStatus(url, 'online')
        },
        onClose: () => {
          if (this.current === connection) this.current = null
          resolve(welcomed)
        }
      })
      this.current = connection
    })
  }

  private setStatus (url: string, status: LinkStatus): void {
    this.currentStatus = status
    this.options.onStatus(url, status)
  }

  /** Waits, offline, until the device is online (or this dialer closes). */
  private async untilOnline (url: string): Promise<void> {
    const online = this.options.untilOnline?.() ?? null
    if (online === null) return
    this.setStatus(url, 'offline')
    await new Promise<void>(resolve => {
      this.wake = () => { this.wake = null; resolve() }
      online.then(() => this.wake?.(), () => this.wake?.())
    })
  }

  /** Waits a random delay in [0, min(max, min * 2^failures)) (full jitter), or until closed. */
  private pause (failures: number): Promise<void> {
    if (this.closed) return Promise.resolve()
    const min = this.options.minDelayMs ?? 100
    const max = this.options.maxDelayMs ?? 10_000
    const bound = Math.min(max, min * 2 ** Math.min(failures, 30))
    return new Promise(resolve => {
      const timer = setTimeout(() => { this.wake = null; resolve() }, Math.random() * bound)
      this.wake = () => { clearTimeout(timer); this.wake = null; resolve() }
    })
  }
}
