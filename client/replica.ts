/**
 * The embeddable replica: local-first Yjs documents kept in a local store and synced with
 * relays and peers over the native protocol.
 */
import { CloseCode } from '../shared/wire/close-codes.js'
import { ObservableV2 } from 'lib0/observable'
import { uuidv4 } from 'lib0/random'
import * as Y from 'yjs'
import { InvalidDocIdError, docIdProblem, parseDocId, type DocId } from '../shared/wire/doc-id.js'
import type { Link } from '../shared/transport/link.js'
import type { DocStore } from '../shared/storage/store.js'
import { peerIdProblem, type PeerInfo } from '../shared/wire/native-messages.js'
import { LocalDoc, type LocalDocOptions, type PeerLimits, type SessionStatus } from './local-doc.js'
import { ClosedError, LimitError, UsageError } from '../shared/errors.js'
import { DocHandle } from './doc-handle.js'
import type { Served } from '../shared/sync/connection.js'
import type { DocumentHost } from '../shared/sync/session.js'
import { Dialer, type LinkStatus } from './dialer.js'
import { Router } from './router.js'
import { Tabs } from './tabs.js'
import { WebRtcPeers, type WebRtcOptions } from './webrtc.js'
import { connectWebSocket, resolveWebSocket, type WebSocketConstructor } from '../shared/transport/websocket.js'

/** Options of {@link Replica}. */
export interface ReplicaOptions {
  /** Where documents are kept. The replica closes it in {@link Replica.close}. */
  store: DocStore
  /**
   * Relay URLs (`ws://` or `wss://`), tried in turn. One relay of a cluster is enough: the
   * replica learns the cluster map from it and routes each document to its replicas.
   * None: the replica syncs with peers only, or stays local.
   */
  relays?: string[]
  /**
   * Peer URLs (`ws://` or `wss://`): other replicas listening with `listenForPeers`
   * (`petaldb/node`). Each is kept connected, with the same backoff as relays, and every
   * open document syncs with it. A peer's acknowledgement does not make a change durable.
   */
  peers?: string[]
  /** This replica's stable id, told to relays and peers. Default: a random id per instance. */
  peerId?: string
  /**
   * Sync with other replicas on the same store in tabs of this origin, over a
   * BroadcastChannel named after the store (or the name given here), with no relay.
   * Default: on in browsers for stores with a name (`IndexedDbStore`), off elsewhere.
   */
  tabs?: boolean | string
  /**
   * Connect directly, over WebRTC data channels, to other replicas that have a document
   * open through the same relay (the relay passes the signaling on); edits then flow peer
   * to peer, also while the relay is away. On Node, pass an implementation:
   * `webrtc: { RTCPeerConnection }` (for example from `node-datachannel/polyfill`). Default off.
   */
  webrtc?: boolean | WebRtcOptions
  /**
   * The relay token (a JWT; see the README's security section), or a function returning
   * one, called for every new connection so it can fetch a fresh token.
   */
  token?: string | (() => string | Promise<string>)
  /** WebSocket implementation. Default `globalThis.WebSocket`, or `ws` once `petaldb/node` is imported. */
  WebSocket?: WebSocketConstructor
  /**
   * A custom transport: opens the link to a relay or peer URL instead of a WebSocket. Any
   * {@link Link} works (an in-memory pair, a connection the app already has); the URLs in
   * `relays` and `peers` are then only names passed to this function, not checked as
   * `ws://` URLs, and `WebSocket` is not used.
   */
  connect?: (url: string) => Promise<Link>
  /** Reconnect backoff: first delay bound, doubled per failure up to `maxReconnectDelayMs`. Default 100 ms. */
  minReconnectDelayMs?: number
  /** Largest reconnect delay bound. Default 10 s. */
  maxReconnectDelayMs?: number
}

/** A link status change, as emitted by `replica.on('status', ...)`: `relay` is the relay's or the peer's URL. */
export interface RelayStatusEvent {
  relay: string
  status: LinkStatus
  /** Whether the URL is a relay's (else a peer's). */
  isRelay: boolean
}

/**
 * A refusal: of a document by its relay or a peer (no access, a write with a read-only token,
 * an update the relay will never take, a failed load), or of the whole connection by a relay
 * or a listening peer (4401: no token, or an invalid or expired one; call
 * {@link Replica.setToken}, as nothing is dialed there again until then).
 */
export interface RefusedEvent {
  /** The document refused; absent when the whole connection was. */
  docId?: string
  /** The relay's or the peer's URL, when the whole connection was refused. */
  url?: string
  /** A close code: 4401 unauthorized, 4403 forbidden, 4400 an update refused as invalid, 4503 unavailable, ... */
  code: number
  reason: string
}

/** A change in how an open document stands with its relays and peers (see `DocHandle.peers`). */
export interface PeersEvent {
  docId: string
  peers: SessionStatus[]
  pending: number
}

/** A document deleted on its relay (`DELETE /v1/docs/<id>`): the replica removed its local copy. */
export interface DeletedEvent {
  docId: string
}

/** Events of a {@link Replica}. */
export interface ReplicaEvents {
  status: (event: RelayStatusEvent) => void
  refused: (event: RefusedEvent) => void
  /** A relay said an open document was deleted: its local copy is removed, and it is closed (its handle's status is `deleted`). */
  deleted: (event: DeletedEvent) => void
  peers: (event: PeersEvent) => void
}

/**
 * A replica of PetalDB documents. Documents open from local storage without waiting for
 * the network; every local change is stored locally before it is sent; a relay's
 * acknowledgement means the change is durable on the relay.
 *
 * ```ts
 * const replica = new Replica({ store: new SqliteStore('./local.db'), relays: ['ws://127.0.0.1:4321'] })
 * const notes = replica.doc('notes/1')           // at once, before it has loaded
 * notes.ydoc.getText('body').insert(0, 'hello')  // kept, and stored once it has loaded
 * notes.on('status', status => console.log(status))
 * await notes.durable()
 * ```
 */
export class Replica extends ObservableV2<ReplicaEvents> {
  private readonly store: DocStore
  /** Documents open, by id: their handles and what syncs them. */
  private readonly docs = new Map<DocId, { handle: DocHandle, local: LocalDoc }>()
  /** Documents the app opened (others are open only while peers hold them). */
  private readonly openedByApp = new Set<DocId>()
  /** Sessions of peers holding each document. */
  private readonly peerHolds = new Map<DocId, number>()
  /** Documents not open here that peers may open (see `listenForPeers`). */
  private maxPeerDocuments = Infinity
  private readonly router: Router | null
  private readonly peerDialers: Dialer[]
  private readonly tabs: Tabs | null
  private readonly webrtc: WebRtcPeers | null
  /** This replica as told to relays and peers. */
  readonly self: PeerInfo
  private closed = false
  /** The token given to {@link setToken}, which replaces the configured one. */
  private tokenOverride: string | null = null

  constructor (options: ReplicaOptions) {
    super()
    validateOptions(options)
    this.store = options.store
    this.self = { peerId: options.peerId ?? uuidv4(), isRelay: false }
    this.docOptions = { writer: this.self.peerId }
    // Fail now, not on every reconnect, if there is nothing to connect with.
    if (options.connect === undefined && (options.relays?.length ?? 0) + (options.peers?.length ?? 0) > 0) resolveWebSocket(options.WebSocket)
    const connect = options.connect ?? ((url: string) => connectWebSocket(url, options.WebSocket))
    const token = (): string | Promise<string> => {
      if (this.tokenOverride !== null) return this.tokenOverride
      return typeof options.token === 'function' ? options.token() : options.token ?? ''
    }
    const backoff = {
      ...(options.minReconnectDelayMs === undefined ? {} : { minDelayMs: options.minReconnectDelayMs }),
      ...(options.maxReconnectDelayMs === undefined ? {} : { maxDelayMs: options.maxReconnectDelayMs }),
      ...(browserNetwork() ? { untilOnline } : {})
    }
    const relays = options.relays ?? []
    this.webrtc = options.webrtc === undefined || options.webrtc === false ? null : new WebRtcPeers(this.self, options.webrtc === true ? {} : options.webrtc)
    const webrtc = this.webrtc === null
      ? {}
      : { onOpen: this.webrtc.announce.bind(this.webrtc), onSignal: this.webrtc.receive.bind(this.webrtc) }
    const refusals = {
      tokenRenews: typeof options.token === 'function',
      onRefused: (url: string, code: number, reason: string) => this.emit('refused', [{ url, code, reason }])
    }
    this.router = relays.length === 0
      ? null
      : new Router({ relays, connect, self: this.self, token, onStatus: (relay, status) => this.emit('status', [{ relay, status, isRelay: true }]), ...refusals, ...webrtc, ...backoff })
    this.peerDialers = (options.peers ?? []).map(url => new Dialer({
      urls: [url],
      connect,
      self: this.self,
      token,
      onStatus: (relay, status) => this.emit('status', [{ relay, status, isRelay: false }]),
      ...refusals,
      ...backoff
    }))
    const channel = tabsChannel(options)
    this.tabs = channel === null ? null : new Tabs(channel, this.self)
    // A browser knows when its network comes and goes: a socket it kept across a change may be
    // dead without knowing it (Chromium keeps them open while offline), and waiting out the
    // backoff would delay the sync a person is waiting for.
    if (browserNetwork()) {
      globalThis.addEventListener('online', this.networkChanged)
      globalThis.addEventListener('offline', this.networkChanged)
    }
  }

  private readonly networkChanged = (): void => this.reconnect()

  /**
   * Drops every relay and peer link and dials again at once, with the backoff reset. Done by
   * itself in browsers on the `online` and `offline` events; call it when the app knows the
   * network changed some other way.
   */
  reconnect (): void {
    if (this.closed) return
    this.router?.reconnect()
    for (const dialer of this.peerDialers) dialer.reconnect()
  }

  /**
   * A handle on document `docId`, at once: its Y.Doc (the app's own `ydoc`, if given) and
   * awareness may be used before it has loaded from local storage (changes made meanwhile
   * are kept), and it reports its status and pending changes as events. Loading never waits
   * for the network. The same handle is returned while the document is open. An invalid
   * id gives a handle whose `whenLoaded()` rejects (status `failed`).
   */
  doc (docId: string, options: { ydoc?: Y.Doc } = {}): DocHandle {
    this.assertOpen()
    const problem = docIdProblem(docId)
    if (problem !== null) {
      const error = new InvalidDocIdError(`${problem}: ${JSON.stringify(String(docId).slice(0, 80))}`)
      return new DocHandle(docId, options.ydoc ?? new Y.Doc(), null, error, async () => {})
    }
    const id = docId as DocId
    this.openedByApp.add(id)
    const open = this.entry(id, options.ydoc)
    if (options.ydoc !== undefined && open.handle.ydoc !== options.ydoc) throw new UsageError(`document ${docId} is already open with another Y.Doc`)
    return open.handle
  }

  /**
   * Opens a document from local storage (creating it if new) and starts syncing it; resolves
   * with its Y.Doc once it has loaded. Never waits for the network. Opening an open document
   * returns the same Y.Doc. Rejects for an invalid id. (The same as `doc(docId).whenLoaded()`.)
   */
  async open (docId: string): Promise<Y.Doc> {
    const handle = this.doc(docId)
    await handle.whenLoaded()
    return handle.ydoc
  }

  /**
   * Serves `docId` to a peer that opened it on this replica (see `listenForPeers`): the
   * document is loaded from local storage and synced with this replica's relays and peers
   * too, and closed again once no peer holds it, unless the app opened it.
   * @internal
   */
  serveToPeer (docId: DocId): Served {
    return { host: this.acquireForPeer(docId), release: () => this.releaseForPeer(docId) }
  }

  /**
   * Sets how documents are served to peers (`listenForPeers`): limits on what they send, as a
   * relay's, and how many documents the app has not opened they may hold open at once.
   * @internal
   */
  servePeers ({ limits, maxDocuments }: { limits: PeerLimits, maxDocuments: number }): void {
    this.docOptions.limits = limits
    this.maxPeerDocuments = maxDocuments
  }

  /** {@link serveToPeer} in two halves: the document, held for a peer until {@link releaseForPeer}. @internal */
  acquireForPeer (docId: DocId): Promise<DocumentHost> {
    this.assertOpen()
    if (!this.docs.has(docId) && this.peerOnly() >= this.maxPeerDocuments) {
      // Refused before anything is loaded: the app's own documents, and their relay connection, come first.
      return Promise.reject(new LimitError(CloseCode.tryAgainLater, `this replica serves at most ${this.maxPeerDocuments} documents to peers at once`))
    }
    this.peerHolds.set(docId, (this.peerHolds.get(docId) ?? 0) + 1)
    const { local } = this.entry(docId)
    // A failed load holds nothing.
    return local.whenLoaded.then(() => local, (error: unknown) => {
      this.releaseForPeer(docId)
      throw error
    })
  }

  /** Documents open only because peers hold them. */
  private peerOnly (): number {
    let count = 0
    for (const docId of this.peerHolds.keys()) if (!this.openedByApp.has(docId)) count++
    return count
  }

  /** Gives back one {@link acquireForPeer}. @internal */
  releaseForPeer (docId: DocId): void {
    const holds = (this.peerHolds.get(docId) ?? 1) - 1
    if (holds > 0) {
      this.peerHolds.set(docId, holds)
      return
    }
    this.peerHolds.delete(docId)
    if (!this.openedByApp.has(docId) && !this.closed) void this.closeDoc(docId)
  }

  /** @internal How documents are opened: under this replica's id, with limits on what peers send (set by `listenForPeers`). */
  readonly docOptions: LocalDocOptions

  private entry (id: DocId, ydoc?: Y.Doc): { handle: DocHandle, local: LocalDoc } {
    const open = this.docs.get(id)
    if (open !== undefined) return open
    const local = new LocalDoc(this.store, id, ydoc ?? new Y.Doc(), this.docOptions)
    local.onRefused = (code, reason, byRelay) => {
      this.emit('refused', [{ docId: id, code, reason }])
      if (byRelay && code === CloseCode.deleted) void this.dropDeleted(id)
    }
    local.onChange = () => this.emit('peers', [{ docId: id, peers: local.status, pending: local.pending }])
    const handle = new DocHandle(id, local.ydoc, local, null, () => this.closeDoc(id))
    const entry = { handle, local }
    this.docs.set(id, entry)
    local.whenLoaded.then(() => {
      if (this.docs.get(id) === entry) for (const syncer of this.syncers) syncer.attach(local)
    }, () => { if (this.docs.get(id) === entry) this.docs.delete(id) })
    return entry
  }

  /**
   * Replaces the token on every relay connection without dropping the documents (before
   * the old one expires). Documents the new token does not allow are refused by the relay.
   */
  setToken (token: string): void {
    this.tokenOverride = token
    this.router?.refreshToken(token)
    for (const dialer of this.peerDialers) dialer.refreshToken(token)
  }

  /** Ids of the documents held locally, optionally only those starting with `prefix`. */
  async list (prefix = ''): Promise<string[]> {
    for (const { local } of this.docs.values()) local.storeLocal() // a document edited in this turn is listed
    return this.store.list(prefix)
  }

  /** Closes the document if it is open and removes its local copy. Relays keep theirs. */
  async delete (docId: string): Promise<void> {
    const id = parseDocId(docId)
    await this.closeDoc(id)
    await this.store.delete(id)
  }

  /** Stops syncing, closes every document, and closes the store once local writes are stored. */
  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    globalThis.removeEventListener?.('online', this.networkChanged)
    globalThis.removeEventListener?.('offline', this.networkChanged)
    await Promise.all(this.syncers.map(syncer => syncer.close()))
    await Promise.all([...this.docs.keys()].map(id => this.closeDoc(id)))
    await this.store.close()
    this.destroy()
  }

  /**
   * A relay deleted `id`: closed here, its local copy removed (what the app still holds in
   * its Y.Doc is neither stored nor sent again), and the app told.
   */
  private async dropDeleted (id: DocId): Promise<void> {
    const open = this.docs.get(id)
    if (open === undefined) return
    open.handle.deleted()
    await this.closeDoc(id)
    await this.store.delete(id)
    this.emit('deleted', [{ docId: id }])
  }

  private async closeDoc (id: DocId): Promise<void> {
    this.openedByApp.delete(id)
    const open = this.docs.get(id)
    if (open === undefined) return
    this.docs.delete(id)
    for (const syncer of this.syncers) syncer.detach(id)
    await open.local.close()
  }

  /** Whatever syncs documents: the relays' router, peer dialers, tabs, WebRTC peers. */
  private get syncers (): Array<Pick<Dialer, 'attach' | 'detach'> & { close(): void | Promise<void> }> {
    return [...(this.router === null ? [] : [this.router]), ...this.peerDialers, ...(this.tabs === null ? [] : [this.tabs]), ...(this.webrtc === null ? [] : [this.webrtc])]
  }

  private assertOpen (): void {
    if (this.closed) throw new ClosedError('replica is closed')
  }
}

/** Throws a clear error for options that cannot work. */
function validateOptions (options: ReplicaOptions): void {
  if (typeof options !== 'object' || options === null) throw new TypeError('new Replica(options) needs an options object, with at least a store')
  const store = options.store as Partial<DocStore> | undefined
  if (store === undefined || typeof store.load !== 'function' || typeof store.append !== 'function') {
    throw new TypeError('Replica options need a store: a MemoryStore, a SqliteStore (petaldb/node) or an IndexedDbStore (petaldb/browser)')
  }
  for (const key of ['relays', 'peers'] as const) {
    const urls = options[key]
    if (urls === undefined) continue
    if (!Array.isArray(urls) || !urls.every(url => typeof url === 'string')) throw new TypeError(`Replica option ${key} must be an array of URLs, e.g. ['ws://127.0.0.1:4321']`)
    if (options.connect === undefined) {
      const bad = urls.find(url => !/^wss?:\/\/[^/]/.test(url))
      if (bad !== undefined) throw new TypeError(`Replica option ${key}: ${JSON.stringify(bad)} is not a ws:// or wss:// URL`)
    }
  }
  if (options.token !== undefined && typeof options.token !== 'string' && typeof options.token !== 'function') throw new TypeError('Replica option token must be a string or a function returning one')
  const peerIdWrong = options.peerId === undefined ? null : peerIdProblem(String(options.peerId))
  if (peerIdWrong !== null) throw new TypeError(`Replica option peerId: ${peerIdWrong}`)
}

/** The BroadcastChannel name tabs sync on, or null if tab sync is off; see {@link ReplicaOptions.tabs}. */
function tabsChannel ({ tabs, store }: ReplicaOptions): string | null {
  if (tabs === false) return null
  if (typeof tabs === 'string') return tabs
  const inBrowser = typeof (globalThis as { document?: unknown }).document !== 'undefined'
  if (tabs === undefined && !inBrowser) return null
  if (typeof globalThis.BroadcastChannel === 'undefined' || store.name === undefined) return null
  return `petaldb:${store.name}`
}

/** Whether this runs where the network's state is known: a browser, with `navigator.onLine` and `online`/`offline` events. */
function browserNetwork (): boolean {
  return typeof globalThis.addEventListener === 'function' && typeof navigator !== 'undefined' && 'onLine' in navigator
}

/** While the browser says it is offline, resolves once it is online; null when online (dialing would fail, or, under some emulations, pretend to work). */
function untilOnline (): Promise<void> | null {
  if (navigator.onLine) return null
  return new Promise(resolve => globalThis.addEventListener('online', () => resolve(), { once: true }))
}
