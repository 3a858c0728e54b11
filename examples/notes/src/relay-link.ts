/**
 * Whether the replica is connected to its relay right now, from the replica's `status`
 * events: a status line needs it to tell "offline" from "connecting".
 */
import { ObservableV2 } from 'lib0/observable'
import type { Replica } from '../../../client/index.js'

/** See the module comment. Emits `change` with the new value. */
export class RelayLink extends ObservableV2<{ change: (online: boolean) => void }> {
  private current = false

  constructor (replica: Replica) {
    super()
    replica.on('status', ({ status, isRelay }) => {
      if (!isRelay) return // a peer's link says nothing about the server
      const online = status === 'online'
      if (online === this.current) return
      this.current = online
      this.emit('change', [online])
    })
  }

  /** Whether a relay link is up. */
  get online (): boolean {
    return this.current
  }
}
