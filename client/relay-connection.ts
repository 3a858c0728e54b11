/**
 * A replica's connection to its relays: one Link at a time, re-established with
 * exponential backoff and full jitter, cycling through the relay URLs. Every document
 * attached to it is opened on each new link (a fresh handshake in both directions merges
 * what either side did while apart), and the relay's messages are routed to the
 * documents' sessions.
 */
import { ProtocolError } from '../shared/wire/bytes.js'
import { CloseCode } from '../shared/wire/close-codes.js'
import type { DocId } from '../shared/wire/doc-id.js'
import type { Link } from '../shared/transport/link.js'
import type { ClusterMap } from '../shared/placement.js'
import { NATIVE_PROTOCOL_VERSION, decodeNativeMessage, encodeNativeMessage, type NativeMessage } from '../shared/wire/native-messages.js'
import type { DocSession } from '../shared/doc-session.js'
import type { LocalDoc } from './local-doc.js'

/** Connection state of one relay URL. */
export type RelayStatus = 'connecting' | 'online' | 'offline'

/** Options of {@link RelayConnection}. */
export interface RelayConnectionOptions {
  /** Relay URLs, tried in turn. */
  urls: string[]
  /** Opens a link to a relay URL. */
  connect: (url: string) => Promise<Link>
  /** Reports each status change of a relay URL. */
  onStatus: (url: string, status: RelayStatus) => void
  /** A relay sent its cluster map. */
  onCluster?: (map: ClusterMap) => void
  /** A relay sent a document elsewhere. */
  onRedirect?: (docId: DocId, url: string) => void
  /** The token to present in HELLO ('' for none); called for every new link. */
  token?: () => string | Promise<string>
  /** First reconnect delay bound, doubled per failed attempt. Default 100 ms. */
  minDelayMs?: number
  /** Largest reconnect delay bound. Default 10 s. */
  maxDelayMs?: number
}

/** See the module comment. */
export class RelayConnection {
  private readonly docs = new Map<DocId, LocalDoc>()
  /** Sessions on the current link, by document. */
  private readonly sessions = new Map<DocId, DocSession>()
  private link: Link | null = null
  private online = false
  private currentStatus: RelayStatus = 'connecting'
  private closed = false
  private wake: (() => void) | null = null
  private readonly running: Promise<void>

  constructor (private readonly options: RelayConnectionOptions) {
    this.running = this.run()
  }

  /** The status of the latest attempt. */
  get status (): RelayStatus {
    return this.currentStatus
  }

  /** Documents attached to this connection. */
  get attached (): LocalDoc[] {
    return [...this.docs.values()]
  }

  /** Syncs `doc` over this connection from now on. */
  attach (doc: LocalDoc): void {
    this.docs.set(doc.docId, doc)
    if (this.online) this.openOnLink(doc)
  }

  /** Stops syncing `docId` (telling the relay). */
  detach (docId: DocId): void {
    const doc = this.docs.get(docId)
    const session = this.sessions.get(docId)
    this.docs.delete(docId)
    this.sessions.delete(docId)
    if (doc !== undefined && session !== undefined) doc.detach(session, true)
  }

  /** Sends a fresh token on the current link (the relay keeps the open documents). */
  refreshToken (token: string): void {
    if (this.online) this.link?.send(encodeNativeMessage({ type: 'auth', token }))
  }

  /** Closes the link and stops reconnecting. */
  async close (): Promise<void> {
    this.closed = true
    this.wake?.()
    this.link?.close(CloseCode.normal, 'replica closing')
    await this.running
  }

  private openOnLink (doc: LocalDoc): void {
    const link = this.link!
    this.sessions.set(doc.docId, doc.attach(message => link.send(encodeNativeMessage(message))))
  }

  private async run (): Promise<void> {
    const { urls } = this.options
    let failures = 0
    for (let attempt = 0; !this.closed; attempt++) {
      const url = urls[attempt % urls.length]!
      this.setStatus(url, 'connecting')
      let link: Link
      try {
        link = await this.options.connect(url)
      } catch {
        this.setStatus(url, 'offline')
        await this.pause(failures++)
        continue
      }
      if (this.closed) {
        link.close(CloseCode.normal, 'replica closing')
        break
      }
      const wasOnline = await this.serve(url, link)
      this.setStatus(url, 'offline')
      if (wasOnline) failures = 0
      await this.pause(failures++)
    }
  }

  /** Runs the protocol on `link` until it closes; resolves whether it ever got online. */
  private serve (url: string, link: Link): Promise<boolean> {
    this.link = link
    let welcomed = false
    return new Promise(resolve => {
      const receive = (message: NativeMessage): void => {
        if (message.type === 'welcome') {
          if (welcomed) throw new ProtocolError('second welcome')
          welcomed = true
          this.online = true
          this.setStatus(url, 'online')
          for (const doc of this.docs.values()) this.openOnLink(doc)
          return
        }
        if (!welcomed) throw new ProtocolError('expected welcome')
        if (message.type === 'cluster') return this.options.onCluster?.(message.map)
        if (message.type === 'redirect') return this.options.onRedirect?.(message.docId, message.url)
        if (message.type === 'sync' || message.type === 'update' || message.type === 'ack' || message.type === 'awareness' || message.type === 'doc-error') {
          this.sessions.get(message.docId)?.receive(message)
          return
        }
        throw new ProtocolError(`unexpected ${message.type} message from a relay`)
      }
      link.onMessage = frame => {
        try {
          receive(decodeNativeMessage(frame))
        } catch (error) {
          link.close(CloseCode.badRequest, error instanceof ProtocolError ? error.message : 'message could not be processed')
        }
      }
      link.onClose = () => {
        this.link = null
        this.online = false
        for (const [docId, session] of this.sessions) this.docs.get(docId)?.detach(session, false)
        this.sessions.clear()
        resolve(welcomed)
      }
      Promise.resolve().then(() => this.options.token?.() ?? '').then(
        token => link.send(encodeNativeMessage({ type: 'hello', version: NATIVE_PROTOCOL_VERSION, token, from: '' })),
        () => link.close(CloseCode.normal, 'could not get a token')
      )
    })
  }

  private setStatus (url: string, status: RelayStatus): void {
    this.currentStatus = status
    this.options.onStatus(url, status)
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
