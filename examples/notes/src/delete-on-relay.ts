/**
 * Deleting a note for everyone, not only from this device and the shared list.
 *
 * This is where the demo will ask the relay to delete a note's document with its document
 * API: `DELETE /v1/docs/<id>` on the relay's port. The page comes from another origin than
 * the relay, so that needs CORS on the relay or the route proxied by the demo's server;
 * until then this does nothing: the relay keeps its copy, and other devices drop theirs
 * when they see the note leave the list.
 */

/** Asks the relay at `relayUrl` to delete note `id` for every replica (not yet: see the module comment). */
export async function deleteOnRelay (_relayUrl: string, _id: string): Promise<void> {}
