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

/**
 * Connection state of one URL: `refused` once it closed the connection as unauthorized
 * (4401: no token, or an invalid or expired one), until a new token is set.
 */
export type LinkStatus = 'connecting' | 'online' | 'offline' | 'refused'

/**
 * How long a link must have been online for its close to reset the backoff: a link that the
 * other side closes right after its welcome (a relay refusing what the handshake sends) must
 * not be redialed at once, for ever.
 */
const STABLE_LINK_MS = 5_000

/** After a 4401, with a token function (which may give a new token): first retry at once, then after this, doubling. */
const REFUSED_RETRY_MIN_MS = 60_000
const REFUSED_RETRY_MAX_MS = 10 * 60_000

/** Options of {@link Dialer}. */
export interface DialerOptions {
  /** URLs to dial, tried in turn. */
  urls: string[]
  /** Opens a link to a URL. */
  connect: (url: string) => Promise<Link>
  /** This replica, as told to the other side. */
  self: PeerInfo
  /** Whether the URLs are relays this replica chose (see `LinkGroupOptions.relays`). */
  relays?: boolean
  /** Reports each status change of a URL. */
  onStatus: (url: string, status: LinkStatus) => void
  /** The other side refused the connection as unauthorized (4401): the dialer waits for {@link Dialer.refreshToken}. */
  onRefused?: (url: string, code: number, reason: string) => void
  /**
   * Whether asking for the token again may give another (a token function): after a 4401 the
   * dialer then tries once more at once, and then every few minutes, besides on a new token.
   */
  tokenRenews?: boolean
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
  /** The URLs dialed in turn (one, once {@link pin} chose it). */
  private urls: string[]
  private currentUrl: string
  private closed = false
  private wake: (() => void) | null = null
  /** Failed attempts since the last link that stayed online (the backoff grows with them). */
  private failures = 0
  /** Connections refused as unauthorized in a row. */
  private refusals = 0
  /** Wakes a dialer that waits for a new token. */
  private tokenSet: (() => void) | null = null
  private readonly running: Promise<void>

  constructor (private readonly options: DialerOptions) {
    this.urls = options.urls
    this.currentUrl = options.urls[0]!
    this.group = new LinkGroup({
      self: options.self,
      ...(options.token === undefined ? {} : { token: options.token }),
      ...(options.relays === undefined ? {} : { relays: options.relays }),
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

  /** The URL of the latest attempt. */
  get url (): string {
    return this.currentUrl
  }

  /** Dials only `url` from now on (a relay of a cluster, found among several given). */
  pin (url: string): void {
    this.urls = [url]
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

  /** Sends a fresh token on the current link (the relay keeps the open documents), or dials again with it if the last one was refused. */
  refreshToken (token: string): void {
    this.connection?.send({ type: 'auth', token })
    this.tokenSet?.()
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
    this.tokenSet?.()
    this.group.close(CloseCode.normal, 'replica closing')
    await this.running
  }

  private async run (): Promise<void> {
    for (let attempt = 0; !this.closed; attempt++) {
      const url = this.urls[attempt % this.urls.length]!
      this.currentUrl = url
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
      const ended = await this.serve(url, link)
      if (ended.code === CloseCode.unauthorized && !this.closed) {
        await this.refused(url, ended.code, ended.reason)
        continue
      }
      this.setStatus(url, 'offline')
      if (ended.onlineMs >= STABLE_LINK_MS) this.failures = 0
      await this.pause(this.failures++)
    }
  }

  /** Runs the protocol on `link` until it closes; resolves how it closed and how long it was online. */
  private serve (url: string, link: Link): Promise<{ code: number, reason: string, onlineMs: number }> {
    return new Promise(resolve => {
      let welcomedAt: number | null = null
      const connection = this.group.run(link, 'dial', {
        onReady: () => {
          welcomedAt = Date.now()
          this.refusals = 0
          this.setStatus(url, 'online')
        },
        onClose: (code, reason) => {
          if (this.current === connection) this.current = null
          resolve({ code, reason, onlineMs: welcomedAt === null ? 0 : Date.now() - welcomedAt })
        }
      })
      this.current = connection
    })
  }

  /**
   * The other side refused this replica's token: every attached document shows it, the owner
   * is told once, and no link is dialed again until a new token is set (or, with a token
   * function, once at once and then every few minutes): redialing with the same token only
   * gets the same answer.
   */
  private async refused (url: string, code: number, reason: string): Promise<void> {
    this.setStatus(url, 'refused')
    for (const doc of this.group.attached) doc.linkRefused({ code, reason })
    this.options.onRefused?.(url, code, reason)
    const attempt = this.refusals++
    const retryMs = this.options.tokenRenews !== true ? null : attempt === 0 ? 0 : Math.min(REFUSED_RETRY_MAX_MS, REFUSED_RETRY_MIN_MS * 2 ** (attempt - 1))
    await new Promise<void>(resolve => {
      const timer = retryMs === null ? undefined : setTimeout(() => done(), retryMs)
      const done = (): void => {
        clearTimeout(timer)
        this.tokenSet = null
        resolve()
      }
      this.tokenSet = done
    })
    this.failures = 0
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
