/**
 * Keeps every listed note open in the replica, so that changes made offline to any note
 * go to the server on reconnect, not only those of the note on screen (a closed
 * document does not sync). Notes removed from the list on another device, or deleted on
 * the relay, lose their local copy here too.
 */
import { ObservableV2 } from 'lib0/observable'
import type { DocHandle, Replica } from '../../../client/index.js'
import type { NotesIndex } from './notes-index.js'

/** See the module comment. Emits `change` when a note opens or closes, or a note's status or pending count changes. */
export class OpenNotes extends ObservableV2<{ change: () => void }> {
  private readonly handles = new Map<string, DocHandle>()
  private readonly changed = (): void => this.emit('change', [])

  constructor (private readonly replica: Replica, index: NotesIndex) {
    super()
    index.onChange(({ added, removed, local }) => {
      for (const id of added) this.open(id)
      // The device that deleted a note already dropped its copy (see `remove`).
      if (!local) for (const id of removed) void this.remove(id)
    })
    for (const { id } of index.entries()) this.open(id)
    // Deleted on the relay (from another device, or through its API): the replica dropped its copy.
    replica.on('deleted', ({ docId }) => {
      this.handles.delete(docId)
      if (index.has(docId)) index.remove(docId)
      this.changed()
    })
  }

  /** The handle of note `id`, opening it if needed. */
  open (id: string): DocHandle {
    let handle = this.handles.get(id)
    if (handle === undefined) {
      handle = this.replica.doc(id)
      handle.on('status', this.changed)
      handle.on('pending', this.changed)
      this.handles.set(id, handle)
      this.changed()
    }
    return handle
  }

  /** The handle of note `id` if it is open. */
  get (id: string): DocHandle | undefined {
    return this.handles.get(id)
  }

  /** Closes note `id` and removes its local copy. */
  async remove (id: string): Promise<void> {
    const handle = this.handles.get(id)
    if (handle !== undefined) {
      handle.off('status', this.changed)
      handle.off('pending', this.changed)
      this.handles.delete(id)
    }
    await this.replica.delete(id)
    this.changed()
  }
}
