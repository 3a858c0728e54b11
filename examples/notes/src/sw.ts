/**
 * The service worker: caches the app shell (the page, its script and style) when it
 * installs, and answers those requests from the cache, so the page opens with no network.
 * The notes themselves are in IndexedDB, kept by the replica. A new build has a new
 * version, hence a new worker, which caches the new shell and drops the old one.
 */

/** Set by the bundler (bundle.ts): a hash of the shell, and its paths. */
declare const SHELL_VERSION: string
declare const SHELL_FILES: string[]

// The few service worker types used here (the DOM library in this repo has no WebWorker types).
interface ExtendableEvent extends Event { waitUntil(promise: Promise<unknown>): void }
interface FetchEvent extends ExtendableEvent { readonly request: Request, respondWith(response: Promise<Response>): void }
declare const self: {
  addEventListener(type: 'install' | 'activate', listener: (event: ExtendableEvent) => void): void
  addEventListener(type: 'fetch', listener: (event: FetchEvent) => void): void
  skipWaiting(): Promise<void>
  clients: { claim(): Promise<void> }
  location: { origin: string }
}

const PREFIX = 'petaldb-notes-'
const CACHE = PREFIX + SHELL_VERSION

self.addEventListener('install', event => {
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE)
    await cache.addAll(SHELL_FILES.map(path => new Request(path, { cache: 'reload' })))
    await self.skipWaiting()
  })())
})

self.addEventListener('activate', event => {
  event.waitUntil((async () => {
    for (const key of await caches.keys()) if (key.startsWith(PREFIX) && key !== CACHE) await caches.delete(key)
    await self.clients.claim()
  })())
})

self.addEventListener('fetch', event => {
  const { request } = event
  const url = new URL(request.url)
  if (request.method !== 'GET' || url.origin !== self.location.origin) return
  // Every page of the app is the one page: the note to show is in the hash.
  const path = request.mode === 'navigate' ? '/' : url.pathname
  if (!SHELL_FILES.includes(path)) return
  event.respondWith(caches.open(CACHE).then(cache => cache.match(path)).then(cached => cached ?? fetch(request)))
})

export {}
