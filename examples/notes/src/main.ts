/**
 * The notes demo: a PetalDB replica on IndexedDB synced with the relay named in the page,
 * the list of notes (itself a document), the note on screen, and who is typing.
 */
import { Replica } from '../../../client/index.js'
import { IndexedDbStore } from '../../../client/browser.js'
import { deleteOnRelay } from './delete-on-relay.js'
import { renderNoteList, noteIdOf } from './note-list.js'
import { NoteView } from './note-view.js'
import { INDEX_ID, NotesIndex } from './notes-index.js'
import { keepShellOffline } from './offline-shell.js'
import { OpenNotes } from './open-notes.js'
import { RelayLink } from './relay-link.js'
import { renderStatus, statusOf, watchStatus } from './status.js'
import { loadUser, saveUser, userNamed } from './user.js'

const element = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const found = document.getElementById(id)
  if (found === null) throw new Error(`the page has no #${id}`)
  return found as T
}

const relayUrl = document.querySelector<HTMLMetaElement>('meta[name="petaldb-relay"]')?.content ?? ''
const replica = new Replica({
  store: new IndexedDbStore({ name: 'petaldb-notes' }),
  relays: relayUrl === '' ? [] : [relayUrl]
})
const link = new RelayLink(replica)
const index = new NotesIndex(replica.doc(INDEX_ID))
const notes = new OpenNotes(replica, index)
let user = loadUser()
const view = new NoteView(
  { note: element('note'), empty: element('empty'), editor: element('editor'), status: element('note-status') },
  notes, index, link, user
)

const list = element('note-list')
const drawList = (): void => renderNoteList(list, index.entries(), view.current, id => {
  const handle = notes.get(id)
  return handle === undefined ? null : statusOf(handle, link)
})

const route = (): void => {
  view.show(noteIdOf(location.hash))
  drawList()
}

/** The note on screen was deleted elsewhere: say so, instead of leaving it on screen or showing an empty page. */
const deletedElsewhere = (id: string): void => {
  if (view.current !== id) return
  history.replaceState(null, '', location.pathname)
  view.show(null, 'This note was deleted on another device.')
}

// Whichever comes first: the list without the note, or the relay's word that it is gone.
index.onChange(({ removed, local }) => {
  if (!local && view.current !== null && removed.includes(view.current)) deletedElsewhere(view.current)
  drawList()
})
replica.on('deleted', ({ docId }) => deletedElsewhere(docId))
notes.on('change', drawList)
link.on('change', drawList)
watchStatus(index.handle, link, status => renderStatus(element('list-status'), status))
window.addEventListener('hashchange', route)

element('new-note').addEventListener('click', () => {
  location.hash = index.create()
  route() // now, not on hashchange (a later task): what is typed next goes to the new note
})

element('delete-note').addEventListener('click', () => {
  const id = view.current
  if (id === null) return
  index.remove(id)
  history.replaceState(null, '', location.pathname)
  view.show(null)
  drawList()
  void notes.remove(id)
  void deleteOnRelay(relayUrl, id)
})

const nameInput = element<HTMLInputElement>('user-name')
nameInput.value = user.name
nameInput.style.setProperty('--user-color', user.color)
nameInput.addEventListener('input', () => {
  const name = nameInput.value.trim()
  if (name === '') return
  user = userNamed(name)
  nameInput.style.setProperty('--user-color', user.color)
  saveUser(user)
  view.setUser(user)
})

route()
keepShellOffline().then(ready => {
  element('shell-status').textContent = ready ? 'This page opens offline too.' : 'This browser cannot open the page offline.'
}, () => {
  element('shell-status').textContent = 'This page could not be set up to open offline.'
})
