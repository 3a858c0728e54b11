/**
 * A document's status in words a person understands at a glance, from the handle's
 * status and pending count and whether the relay link is up; kept current by events.
 */
import type { DocHandle, DocStatus } from '../../../client/index.js'
import type { RelayLink } from './relay-link.js'

/** How a status looks: `tone` picks the colour of its dot. */
export interface StatusText {
  text: string
  /** A longer explanation, for a tooltip. */
  detail: string
  tone: 'server' | 'device' | 'offline' | 'busy' | 'failed'
}

const changes = (n: number): string => n === 1 ? '1 change' : `${n} changes`

/** The words for a document in `status` with `pending` unacknowledged changes. */
export function describeStatus (status: DocStatus, pending: number, relayOnline: boolean): StatusText {
  switch (status) {
    case 'loading':
      return { text: 'Opening…', detail: 'Reading this note from this device', tone: 'busy' }
    case 'failed':
      return { text: 'Could not open', detail: 'This note cannot be read from this device', tone: 'failed' }
    case 'deleted':
      return { text: 'Deleted', detail: 'This note was deleted on the server', tone: 'failed' }
    case 'refused':
      return { text: `Refused by the server${pending > 0 ? ` · ${pending} pending` : ''}`, detail: `The server does not accept this note from you; ${pending > 0 ? `${changes(pending)} stay on this device only` : 'nothing is pending'}`, tone: 'failed' }
    case 'durable':
      return { text: 'Saved on the server', detail: 'Every change is on this device and on the server', tone: 'server' }
    case 'synced':
      // In sync with the relay: what is pending is on its way, or being written here.
      return pending === 0
        ? { text: 'Saving…', detail: 'Writing the latest change to this device', tone: 'busy' }
        : { text: `Saved on this device · ${pending} pending`, detail: `${changes(pending)} on this device, on the way to the server`, tone: 'device' }
    case 'saved':
      return relayOnline
        ? { text: `Saved on this device · ${pending} pending`, detail: `${changes(pending)} on this device; syncing with the server`, tone: 'device' }
        : { text: `Offline · ${pending} pending`, detail: `${changes(pending)} saved on this device; they go to the server when it is back`, tone: 'offline' }
    case 'offline':
      return relayOnline
        ? { text: 'Connecting…', detail: 'Syncing with the server', tone: 'busy' }
        : { text: 'Offline', detail: 'Not connected to the server; changes are saved on this device', tone: 'offline' }
  }
}

/** The current words for `handle`. */
export function statusOf (handle: DocHandle, link: RelayLink): StatusText {
  return describeStatus(handle.status, handle.pending, link.online)
}

/**
 * Calls `show` with `handle`'s status now and on every change of its status, its pending
 * count or the relay link. Returns a function that stops.
 */
export function watchStatus (handle: DocHandle, link: RelayLink, show: (status: StatusText) => void): () => void {
  const update = (): void => show(statusOf(handle, link))
  handle.on('status', update)
  handle.on('pending', update)
  link.on('change', update)
  update()
  return () => {
    handle.off('status', update)
    handle.off('pending', update)
    link.off('change', update)
  }
}

/** Renders a status into `element` (text, tooltip, and `data-tone` for the dot's colour). */
export function renderStatus (element: HTMLElement, status: StatusText): void {
  element.textContent = status.text
  element.title = status.detail
  element.dataset.tone = status.tone
}
