/**
 * Browser entry point: `import { IndexedDbStore } from 'petaldb/browser'`.
 */
export { IndexedDbStore, type IndexedDbStoreOptions } from './indexeddb-store.js'
