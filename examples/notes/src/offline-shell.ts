/** Makes the page load offline after the first visit: registers the service worker (sw.ts) that caches the app shell. */

/** Registers `/sw.js`; resolves true once a worker serves the shell, false where there are no service workers. */
export async function keepShellOffline (): Promise<boolean> {
  if (!('serviceWorker' in navigator)) return false
  await navigator.serviceWorker.register('/sw.js')
  await navigator.serviceWorker.ready
  return true
}
