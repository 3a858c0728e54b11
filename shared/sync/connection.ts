/**
 * One native-protocol link to a peer (`petaldb.v3`), carrying any number of documents.
 * The dialer says HELLO (who it is, whether it is a relay, its token); the acceptor admits
 * it and answers WELCOME with the same about itself. From then on the link is symmetric:
 * either side opens documents (a {@link SyncSession} each, in both roles) and the
 * connection routes every message naming a document to its session. What a node serves,
 * whom it admits and what it does with relay-only messages (cluster map, redirects, token
 * refresh, signaling) are the owner's decisions, passed in as options.
 */
import { LimitError, MovedError, PetalError, ProtocolError } from '../errors.js'
import { CloseCode } from '../wire/close-codes.js'
import type { DocId } from '../wire/doc-id.js'
import { NATIVE_PROTOCOL_VERSION, decodeNativeMessage, encodeNativeMessage, type NativeMessage, type PeerInfo } from '../wire/native-messages.js'
import type { Link } from '../transport/link.js'
import { nativeFraming, type SessionInput } from './framing.js'
import { MAX_EARLY_MESSAGES, SyncSession, type DocumentHost, type SessionOptions } from './session.js'

/** How a node serves a document the peer opened: its host (or a load in progress) and what to do when the session ends. */
export interface Served {
  host: DocumentHost | Promise<DocumentHost>
  /** Called once when the session ends (the host was loaded or not), as a method of this object. */
  release?(): void
}

/** A message that is not about one document's sync: relay-only and signaling messages. */
export type ControlMessage = Extract<NativeMessage, { type: 'cluster' | 'redirect' | 'auth' | 'signal' | 'tombstones' }>

/** Options of {@link PeerConnection}. */
export interface ConnectionOptions {
  /** This node, as told to the peer. */
  self: PeerInfo
  /** The dialing side presents a token (a JWT, a cluster secret, or ''); the accepting side leaves this out. */
  token?: () => string | Promise<string>
  /**
   * Dialing side: whether the other end is a relay this node chose (a configured relay, or a
   * member a relay's cluster map names). Only then is a WELCOME that says it is a relay
   * believed: any other peer may lie, and its acknowledgements never make a change durable.
   */
  dialsRelay?: boolean
  /** The peer id the other end must give (a WebRTC peer, whose id its relay vouched for); another closes the link. */
  expectedPeerId?: string
  /** Accepting side: verifies the dialer's HELLO; throw (an AuthError) to refuse it. */
  admit?: (hello: Extract<NativeMessage, { type: 'hello' }>) => void | Promise<void>
  /**
   * The peer opened a document this node has no session for: serve it, throw (a
   * LimitError or AuthError) to fail the link, or return null having answered the peer
   * some other way (a refusal, a redirect).
   */
  serve?: (docId: DocId) => Served | null
  /** Per-session settings for documents on this link (numbering, write access). */
  session?: (docId: DocId) => Pick<SessionOptions, 'numbered' | 'mayWrite'>
  /** The link is welcomed: documents may be opened. */
  onReady?: (peer: PeerInfo) => void
  /** A control message from the peer (cluster map, redirect, token refresh, signal, tombstones). Throw a ProtocolError if it is not expected. */
  onControl?: (message: ControlMessage) => void
  /** The peer refused a document (docError); its session has ended. */
  onRefused?: (docId: DocId, code: number, reason: string) => void
  /**
   * A message failed. Return true if it was handled (say, by refusing the document);
   * otherwise the connection closes the link with the error's code and message.
   */
  onError?: (error: unknown, docId: DocId | null) => boolean | void
  /** The link closed, from either side. */
  onClose?: (code: number, reason: string) => void
}

interface Entry {
  session: SyncSession
  served: Served | null
}

/** See the module comment. */
export class PeerConnection {
  private state: 'greeting' | 'admitting' | 'ready' | 'closed' = 'greeting'
  private readonly entries = new Map<DocId, Entry>()
  private early: Uint8Array[] = []
  private remote: PeerInfo | null = null

  constructor (private readonly link: Link, private readonly options: ConnectionOptions) {
    link.onMessage = frame => this.onFrame(frame)
    link.onClose = (code, reason) => this.onLinkClose(code, reason)
    if (options.token !== undefined) {
      Promise.resolve().then(options.token).then(
        token => this.sendMessage({ type: 'hello', version: NATIVE_PROTOCOL_VERSION, peer: options.self, token }),
        () => this.close(CloseCode.normal, 'could not get a token')
      )
    }
  }

  /** The peer, once welcomed. */
  get peer (): PeerInfo | null {
    return this.remote
  }

  get ready (): boolean {
    return this.state === 'ready'
  }

  get closed (): boolean {
    return this.state === 'closed'
  }

  /** Documents with a session on this link. */
  get documents (): DocId[] {
    return [...this.entries.keys()]
  }

  /** The session of `docId` on this link, if any. */
  session (docId: DocId): SyncSession | null {
    return this.entries.get(docId)?.session ?? null
  }

  /** Opens `host`'s document on this link (the link must be ready); returns its session. */
  open (host: DocumentHost, release?: () => void): SyncSession {
    if (this.state !== 'ready') throw new Error('the link is not ready')
    const existing = this.entries.get(host.docId)
    if (existing !== undefined) {
      existing.session.open()
      return existing.session
    }
    const session = this.createSession(host.docId, release === undefined ? null : { host, release })
    session.bind(host)
    session.open()
    return session
  }

  /** Ends `docId`'s session, telling the peer. */
  closeDocument (docId: DocId): void {
    this.endSession(docId, true)
  }

  /** Refuses `docId` on this link only: its session ends and the peer gets a docError. */
  refuse (docId: DocId, code: number, reason: string): void {
    this.endSession(docId, false)
    this.sendMessage({ type: 'doc-error', docId, code, reason })
  }

  /** Ends `docId`'s session here and sends the peer to `relay`, which serves the document now. */
  redirect (docId: DocId, relay: { id: string, url: string }): void {
    this.endSession(docId, false)
    this.sendMessage({ type: 'redirect', docId, relayId: relay.id, url: relay.url })
  }

  /** Sends a control message (signaling, token refresh, cluster map, redirect, tombstones). */
  send (message: ControlMessage): void {
    this.sendMessage(message)
  }

  /**
   * Counts `bytes` of work done for the peer (what it had sent to others) against its rate
   * budget, on links that keep one (see `Link.charge`).
   */
  charge (bytes: number): void {
    if (this.state !== 'closed') this.link.charge?.(bytes)
  }

  /** Closes the link. */
  close (code: number, reason: string): void {
    if (this.state === 'closed') return
    this.link.close(code, reason)
  }

  private createSession (docId: DocId, served: Served | null): SyncSession {
    const session = new SyncSession({
      docId,
      peer: this.remote!,
      framing: nativeFraming,
      send: frame => { if (this.state !== 'closed') this.link.send(frame) },
      charge: bytes => this.charge(bytes),
      ...this.options.session?.(docId),
      onError: error => this.onSessionError(error, docId)
    })
    this.entries.set(docId, { session, served })
    return session
  }

  private endSession (docId: DocId, tellPeer: boolean): void {
    const entry = this.entries.get(docId)
    if (entry === undefined) return
    this.entries.delete(docId)
    entry.session.end(tellPeer && this.state === 'ready')
    entry.served?.release?.()
  }

  private sendMessage (message: NativeMessage): void {
    if (this.state !== 'closed') this.link.send(encodeNativeMessage(message))
  }

  private fail (error: unknown, docId: DocId | null): void {
    if (this.state === 'closed') return
    if (this.options.onError?.(error, docId) === true) return
    const closeCode = error instanceof PetalError ? error.code : CloseCode.badRequest
    const reason = error instanceof Error ? error.message : 'message could not be processed'
    // The document first: an honest peer whose store holds what was refused learns which one it was.
    if (docId !== null) this.refuse(docId, closeCode, reason)
    this.close(closeCode, reason)
  }

  private onSessionError (error: unknown, docId: DocId): void {
    this.fail(error, docId)
  }

  private onFrame (frame: Uint8Array): void {
    if (this.state === 'closed') return
    if (this.state === 'admitting') {
      if (this.early.length >= MAX_EARLY_MESSAGES) return this.fail(new ProtocolError('too many messages before the welcome'), null)
      this.early.push(frame)
      return
    }
    let message: NativeMessage
    try {
      message = decodeNativeMessage(frame)
    } catch (error) {
      return this.fail(error, null)
    }
    try {
      if (this.state === 'greeting') this.greet(message)
      else this.dispatch(message)
    } catch (error) {
      this.fail(error, 'docId' in message ? message.docId : null)
    }
  }

  private greet (message: NativeMessage): void {
    const dialer = this.options.token !== undefined
    const first = dialer ? 'welcome' : 'hello'
    if (message.type !== first) throw new ProtocolError(`expected ${first} first, got ${message.type}`)
    if (message.version !== NATIVE_PROTOCOL_VERSION) throw new ProtocolError(`unsupported protocol version ${message.version}`)
    const expected = this.options.expectedPeerId
    if (expected !== undefined && message.peer.peerId !== expected) throw new ProtocolError(`the peer says it is ${JSON.stringify(message.peer.peerId)}, but the link was made with ${JSON.stringify(expected)}`)
    if (message.type === 'welcome') return this.welcomed({ peerId: message.peer.peerId, isRelay: message.peer.isRelay && this.options.dialsRelay === true })
    this.state = 'admitting'
    Promise.resolve(this.options.admit?.(message)).then(() => {
      if (this.state !== 'admitting') return
      this.sendMessage({ type: 'welcome', version: NATIVE_PROTOCOL_VERSION, peer: this.options.self })
      // A peer is a relay only if an admission checked it (a relay's: the cluster secret).
      this.welcomed({ peerId: message.peer.peerId, isRelay: message.peer.isRelay && this.options.admit !== undefined })
      const early = this.early
      this.early = []
      for (const frame of early) this.onFrame(frame)
    }, (error: unknown) => this.fail(error, null))
  }

  private welcomed (peer: PeerInfo): void {
    this.remote = peer
    this.state = 'ready'
    this.options.onReady?.(peer)
  }

  private dispatch (message: NativeMessage): void {
    switch (message.type) {
      case 'open':
        return this.openedByPeer(message.docId, message.stateVector)
      case 'sync':
      case 'update':
      case 'ack':
      case 'awareness': {
        const { docId, ...input } = message
        // Unknown documents are ignored: the message may have crossed a close, a redirect or a refusal.
        this.entries.get(docId)?.session.receive(input as SessionInput)
        return
      }
      case 'close':
        return this.endSession(message.docId, false)
      case 'doc-error':
        this.endSession(message.docId, false)
        this.options.onRefused?.(message.docId, message.code, message.reason)
        return
      case 'cluster':
      case 'redirect':
      case 'auth':
      case 'signal':
      case 'tombstones':
        if (this.options.onControl === undefined) throw new ProtocolError(`unexpected ${message.type} message`)
        return this.options.onControl(message)
      case 'hello':
      case 'welcome':
        throw new ProtocolError(`unexpected ${message.type} message`)
    }
  }

  private openedByPeer (docId: DocId, stateVector: Uint8Array): void {
    const existing = this.entries.get(docId)
    if (existing !== undefined) return existing.session.receive({ type: 'open', stateVector })
    if (this.options.serve === undefined) return this.sendMessage({ type: 'doc-error', docId, code: CloseCode.forbidden, reason: `${docId} is not served here` })
    const served = this.options.serve(docId)
    if (served === null) return
    const session = this.createSession(docId, served)
    session.receive({ type: 'open', stateVector })
    if (!(served.host instanceof Promise)) return session.bind(served.host)
    served.host.then(host => session.bind(host), (error: unknown) => {
      if (this.entries.get(docId)?.session !== session) return
      this.entries.delete(docId)
      session.end()
      if (error instanceof MovedError) return this.sendMessage({ type: 'redirect', docId, relayId: error.relay.id, url: error.relay.url })
      const message = (error as Error).message
      this.sendMessage({ type: 'doc-error', docId, code: error instanceof PetalError ? error.code : CloseCode.documentUnavailable, reason: error instanceof LimitError ? message : `document failed to load: ${message}` })
    })
  }

  private onLinkClose (code: number, reason: string): void {
    if (this.state === 'closed') return
    this.state = 'closed'
    this.early = []
    for (const docId of [...this.entries.keys()]) this.endSession(docId, false)
    this.options.onClose?.(code, reason)
  }
}
