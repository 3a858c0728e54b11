/** The list of notes in the sidebar: titles, each with its status dot, linking to `#<id>`. */
import type { NoteEntry } from './notes-index.js'
import type { StatusText } from './status.js'

/** Renders `entries` into `list`, marking `current`; `statusOf` gives each open note's status. */
export function renderNoteList (list: HTMLElement, entries: NoteEntry[], current: string | null, statusOf: (id: string) => StatusText | null): void {
  list.replaceChildren(...entries.map(({ id, title }) => {
    const item = document.createElement('li')
    const link = document.createElement('a')
    link.href = `#${id}`
    if (id === current) link.setAttribute('aria-current', 'page')
    const status = statusOf(id)
    const dot = document.createElement('span')
    dot.className = 'dot'
    if (status !== null) {
      dot.dataset.tone = status.tone
      dot.title = status.text
    }
    const name = document.createElement('span')
    name.className = 'title'
    name.textContent = title === '' ? 'Untitled' : title
    link.append(dot, name)
    item.append(link)
    return item
  }))
}

/** The note id a location hash names (`#notes/…`), or null. */
export function noteIdOf (hash: string): string | null {
  const id = decodeURIComponent(hash.replace(/^#/, ''))
  return id.startsWith('notes/') ? id : null
}
