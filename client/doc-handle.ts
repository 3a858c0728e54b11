/**
 * A handle on one document of a replica, returned at once by `replica.doc(id)`: an editor
 * can bind to its Y.Doc and awareness before the document has loaded, and a status line can
 * follow its events instead of polling.
 */
import { ObservableV2 } from 'lib0/observable'
import type { Awareness } from 'y-protocols/awareness'
import type * as Y from 'yjs'
import type { LocalDoc, Refusal, SessionStatus } from './local-doc.js'

/**
 * Where a document stands, from loading to durable:
 * - `loading`: it is being read from the local store;
 * - `offline`: no relay is in sync with it, and no local change waits for one;
 * - `saved`: local changes are saved on this device (their write finished), and no relay is
 *   in sync with it to acknowledge them yet;
 * - `synced`: a relay is in sync with it, and local changes await its acknowledgement;
 * - `durable`: a relay is in sync with it and has acknowledged every local change;
 * - `refused`: its relay refused it (see {@link DocHandle.refusal} for the code and reason):
 *   a token that does not allow it or a write to it (4403), no valid token at all (4401),
 *   or an update the relay will never take (4400: the document no longer syncs until it is
 *   opened anew; delete the local copy to start again from the relay's). Until it syncs again;
 * - `failed`: it cannot be opened (an invalid id, or stored data that does not load);
 * - `deleted`: a relay said it was deleted (`DELETE /v1/docs/<id>`): the local copy is
 *   removed and the document closed; changes to its Y.Doc are no longer stored or sent.
 */
export type DocStatus = 'loading' | 'offline' | 'saved' | 'synced' | 'durable' | 'refused' | 'failed' | 'deleted'

/** Events of a {@link DocHandle}. */
export interface DocHandleEvents {
  /** The document's status changed. */
  status: (status: DocStatus) => void
  /** The number of local changes saved locally and not acknowledged by a relay changed. */
  pending: (pending: number) => void
  /** The relays and peers the document syncs with, or how one of them stands, changed. */
  peers: (peers: SessionStatus[]) => void
}

/** See the module comment. Obtain one with `replica.doc(id)`. */
export class DocHandle extends ObservableV2<DocHandleEvents> {
  private current: DocStatus = 'loading'
  private lastPending = 0
  private failure: Error | null = null
  private wasDeleted = false
  private readonly loaded: Promise<void>

  /** @internal Created by the replica. */
  constructor (
    /** The document id. */
    readonly id: string,
    /** The document's Y.Doc: the app's own if it passed one. Usable at once. */
    readonly ydoc: Y.Doc,
    private readonly local: LocalDoc | null,
    failure: Error | null,
    private readonly closeDoc: () => Promise<void>
  ) {
    super()
    this.failure = failure
    if (failure !== null) this.current = 'failed'
    this.loaded = local === null ? Promise.reject(failure) : local.whenLoaded
    this.loaded.then(() => this.update(), (error: unknown) => {
      this.failure = error as Error
      this.update()
    })
    if (local !== null) {
      const previous = local.onChange
      local.onChange = () => {
        previous()
        this.update()
        this.emit('peers', [local.status])
      }
    }
  }

  /** The document's presence (a y-protocols Awareness). Usable at once. */
  get awareness (): Awareness {
    if (this.local === null) throw this.failure!
    return this.local.awareness
  }

  /** Where the document stands; see {@link DocStatus}. */
  get status (): DocStatus {
    return this.current
  }

  /** Local changes saved locally (their write finished) and not yet acknowledged by a relay. */
  get pending (): number {
    return this.local?.pending ?? 0
  }

  /** Why the relay refused the document (status `refused`), until it syncs again; null if it did not. */
  get refusal (): Refusal | null {
    return this.local?.refusal ?? null
  }

  /** The relays and peers the document syncs with now, and how each stands. */
  get peers (): SessionStatus[] {
    return this.local?.status ?? []
  }

  /** Resolves once the stored state is in the Y.Doc; rejects if the document cannot be opened. */
  whenLoaded (): Promise<void> {
    return this.loaded
  }

  /** Resolves once every local change made so far is saved in the local store (its write finished). */
  async saved (): Promise<void> {
    await this.loaded
    return await this.local!.whenStored()
  }

  /** Resolves once every local change made so far is acknowledged as durable by a relay. */
  async durable (): Promise<void> {
    await this.loaded
    return await this.local!.whenDurable()
  }

  /** Resolves once the document has completed a sync with a relay (at once if it is in sync now). */
  async synced (): Promise<void> {
    await this.loaded
    return await this.local!.whenSynced()
  }

  /** Stops syncing the document and releases it; local changes are stored first. */
  close (): Promise<void> {
    return this.closeDoc()
  }

  /** @internal The replica learned the document was deleted. */
  deleted (): void {
    this.wasDeleted = true
    this.update()
  }

  private update (): void {
    const status = this.derive()
    if (status !== this.current) {
      this.current = status
      this.emit('status', [status])
    }
    const pending = this.pending
    if (pending !== this.lastPending) {
      this.lastPending = pending
      this.emit('pending', [pending])
    }
  }

  private derive (): DocStatus {
    const local = this.local
    if (this.wasDeleted) return 'deleted'
    if (this.failure !== null || local === null) return 'failed'
    if (!local.isLoaded) return 'loading'
    if (local.refusal !== null) return 'refused'
    if (local.inSyncWithRelay) return local.pending === 0 && !local.unsaved ? 'durable' : 'synced'
    return local.pending > 0 ? 'saved' : 'offline'
  }
}
