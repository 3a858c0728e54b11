/**
 * Browser entry point: `import { IndexedDbStore } from 'petaldb/browser'`.
 */
export { IndexedDbStore, type IndexedDbStoreOptions } from '../shared/storage/indexeddb-store.js'
