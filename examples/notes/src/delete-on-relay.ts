/**
 * Deleting a note for everyone, not only from this device and the shared list: the relay's
 * document API (`DELETE /v1/docs/<id>`, on the relay's port; the relay allows pages of
 * other origins, as this one is). The relay erases it and closes it on every device that
 * has it open (they drop their copy: see open-notes.ts). Offline, the relay keeps its copy
 * until the next deletion; the note has left the shared list either way.
 */

/** Asks the relay at `relayUrl` (its ws:// URL) to delete note `id` for every replica; false if it could not be reached. */
export async function deleteOnRelay (relayUrl: string, id: string): Promise<boolean> {
  if (relayUrl === '') return false
  const base = relayUrl.replace(/^ws/, 'http').replace(/\/$/, '')
  try {
    const response = await fetch(`${base}/v1/docs/${id.split('/').map(encodeURIComponent).join('/')}`, { method: 'DELETE' })
    return response.status === 204 || response.status === 404
  } catch {
    return false
  }
}
