import { MemoryStore } from '../../shared/storage/memory-store.js'
import { runStoreConformance } from './store-conformance.js'

runStoreConformance('MemoryStore', async () => ({ store: new MemoryStore() }), { persistent: false })
