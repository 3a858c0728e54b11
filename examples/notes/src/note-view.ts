/**
 * The note on screen: its editor, its status line, and its title kept in the list (the
 * first line, written to the index when this device changes it).
 */
import type * as Y from 'yjs'
import type { EditorView } from '@codemirror/view'
import type { DocHandle } from '../../../client/index.js'
import { mountEditor, TEXT } from './editor.js'
import { titleFromText, type NotesIndex } from './notes-index.js'
import type { OpenNotes } from './open-notes.js'
import type { RelayLink } from './relay-link.js'
import { renderStatus, watchStatus } from './status.js'
import { announce, type User } from './user.js'

/** The page elements a note view draws into. */
export interface NoteElements {
  /** Shown while a note is open. */
  note: HTMLElement
  /** Shown while none is. */
  empty: HTMLElement
  editor: HTMLElement
  status: HTMLElement
}

interface Shown {
  id: string
  handle: DocHandle
  editor: EditorView
  stop: () => void
}

/** See the module comment. */
export class NoteView {
  private shown: Shown | null = null

  constructor (
    private readonly elements: NoteElements,
    private readonly notes: OpenNotes,
    private readonly index: NotesIndex,
    private readonly link: RelayLink,
    private user: User
  ) {}

  /** The id of the note on screen, or null. */
  get current (): string | null {
    return this.shown?.id ?? null
  }

  /** Shows note `id` (null: none, with `message` in the empty state). */
  show (id: string | null, message = 'Pick a note, or create one.'): void {
    if (id !== null && id === this.current) return
    this.hide()
    this.elements.empty.textContent = message
    this.elements.note.hidden = id === null
    this.elements.empty.hidden = id !== null
    if (id === null) return
    const handle = this.notes.open(id)
    announce(handle.awareness, this.user)
    const editor = mountEditor(this.elements.editor, handle)
    const text = handle.ydoc.getText(TEXT)
    const retitle = (event: Y.YTextEvent): void => {
      // Only this device's edits: every device would otherwise rewrite the same title.
      if (event.transaction.local) this.index.setTitle(id, titleFromText(text.toString()))
    }
    text.observe(retitle)
    const stopStatus = watchStatus(handle, this.link, status => renderStatus(this.elements.status, status))
    this.shown = {
      id,
      handle,
      editor,
      stop: () => {
        stopStatus()
        text.unobserve(retitle)
        editor.destroy()
        // The note stays open (see OpenNotes): take this cursor out of it.
        if (handle.status !== 'failed') handle.awareness.setLocalStateField('cursor', null)
      }
    }
    editor.focus()
  }

  /** Shows `user` as this device's name and colour, now and for the notes shown next. */
  setUser (user: User): void {
    this.user = user
    if (this.shown !== null) announce(this.shown.handle.awareness, user)
  }

  private hide (): void {
    this.shown?.stop()
    this.shown = null
  }
}
