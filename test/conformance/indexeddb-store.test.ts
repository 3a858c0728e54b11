import 'fake-indexeddb/auto'
import { IndexedDbStore } from '../../shared/storage/indexeddb-store.js'
import { runStoreConformance } from './store-conformance.js'

let counter = 0

runStoreConformance('IndexedDbStore (fake-indexeddb)', async () => {
  const name = `petaldb-test-${counter++}`
  const store = new IndexedDbStore({ name })
  return {
    store,
    reopen: async () => {
      await store.close()
      return new IndexedDbStore({ name })
    },
    another: () => new IndexedDbStore({ name })
  }
}, { persistent: true })
