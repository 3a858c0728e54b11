/**
 * Who is typing: a name, kept in localStorage, and a colour that follows from it, shown
 * to others through each open note's awareness (y-codemirror.next draws remote cursors
 * from the `user` field).
 */
import type { Awareness } from 'y-protocols/awareness'

/** The awareness `user` field y-codemirror.next reads. */
export interface User {
  name: string
  color: string
  /** The colour of this user's selection, as others see it. */
  colorLight: string
}

const KEY = 'petaldb-notes:user-name'
const NAMES = ['Anemone', 'Bluebell', 'Camellia', 'Dahlia', 'Iris', 'Jasmine', 'Lotus', 'Magnolia', 'Poppy', 'Violet']
const COLORS = ['#2f9e44', '#1971c2', '#9c36b5', '#e8590c', '#0c8599', '#5f3dc4', '#c2255c', '#a0522d']

/** The user called `name`: the same name always has the same colour, on every device. */
export function userNamed (name: string): User {
  let hash = 0
  for (const char of name) hash = (hash * 31 + char.charCodeAt(0)) >>> 0
  const color = COLORS[hash % COLORS.length]!
  return { name, color, colorLight: `${color}33` }
}

/** This device's user: the name stored by {@link saveUser}, or one made up (and stored) on the first visit. */
export function loadUser (storage: Storage = localStorage): User {
  const stored = storage.getItem(KEY)
  if (stored !== null && stored !== '') return userNamed(stored)
  const user = userNamed(NAMES[Math.floor(Math.random() * NAMES.length)]!)
  saveUser(user, storage)
  return user
}

/** Stores `user`'s name for the next visit. */
export function saveUser (user: User, storage: Storage = localStorage): void {
  storage.setItem(KEY, user.name)
}

/** Shows `user` to everyone who has the note of `awareness` open. */
export function announce (awareness: Awareness, user: User): void {
  awareness.setLocalStateField('user', user)
}
