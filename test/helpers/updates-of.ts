/** The updates a Y.Doc emits, as a peer would send them one by one. */
import type * as Y from 'yjs'

/** The updates `doc` emits while `edit` runs. */
export function updatesOf (doc: Y.Doc, edit: () => void): Uint8Array[] {
  const updates: Uint8Array[] = []
  const collect = (update: Uint8Array): void => { updates.push(update) }
  doc.on('update', collect)
  edit()
  doc.off('update', collect)
  return updates
}
