import { MemoryStore } from '../shared/memory-store.js'
import { runStoreConformance } from './store-conformance.js'

runStoreConformance('MemoryStore', async () => ({ store: new MemoryStore() }), { persistent: false })
