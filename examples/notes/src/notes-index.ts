/**
 * The list of notes, itself a PetalDB document (`notes/index`): a Y.Map from note id to
 * title. Every device edits it offline like any note, so they all converge on one list.
 */
import type * as Y from 'yjs'
import type { DocHandle } from '../../../client/index.js'

/** The id of the index document. */
export const INDEX_ID = 'notes/index'

/** One note in the list. */
export interface NoteEntry {
  id: string
  title: string
}

/** A changes report: ids added or removed, and whether this device made the change. */
export interface IndexChange {
  added: string[]
  removed: string[]
  local: boolean
}

/** A fresh note id that sorts by creation time: `notes/<time>-<random>`. */
export function newNoteId (): string {
  const time = Date.now().toString(36).padStart(9, '0')
  const random = Math.random().toString(36).slice(2, 8)
  return `notes/${time}-${random}`
}

/** A note's title: its first line with text, without Markdown heading marks, at most 60 characters. */
export function titleFromText (text: string): string {
  const line = text.split('\n').find(line => line.trim() !== '') ?? ''
  return line.replace(/^\s*#+\s*/, '').trim().slice(0, 60)
}

/** See the module comment. */
export class NotesIndex {
  private readonly notes: Y.Map<string>

  constructor (readonly handle: DocHandle) {
    this.notes = handle.ydoc.getMap<string>('notes')
  }

  /** The notes, newest first. */
  entries (): NoteEntry[] {
    return [...this.notes.entries()]
      .map(([id, title]) => ({ id, title }))
      .sort((a, b) => a.id < b.id ? 1 : a.id > b.id ? -1 : 0)
  }

  /** Whether `id` is in the list. */
  has (id: string): boolean {
    return this.notes.has(id)
  }

  /** Adds a new, untitled note; returns its id. */
  create (): string {
    const id = newNoteId()
    this.notes.set(id, '')
    return id
  }

  /** Sets a listed note's title, writing only when it changed. */
  setTitle (id: string, title: string): void {
    if (this.notes.has(id) && this.notes.get(id) !== title) this.notes.set(id, title)
  }

  /** Removes `id` from the list. */
  remove (id: string): void {
    this.notes.delete(id)
  }

  /** Calls `listener` after every change of the list. Returns a function that stops. */
  onChange (listener: (change: IndexChange) => void): () => void {
    const observer = (event: Y.YMapEvent<string>): void => {
      const added: string[] = []
      const removed: string[] = []
      for (const [id, { action }] of event.changes.keys) {
        if (action === 'add') added.push(id)
        if (action === 'delete') removed.push(id)
      }
      listener({ added, removed, local: event.transaction.local })
    }
    this.notes.observe(observer)
    return () => this.notes.unobserve(observer)
  }
}
