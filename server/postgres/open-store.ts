/**
 * A {@link PostgresStore} on a connection of its own: for tools and tests that read or
 * write a relay database without running a relay.
 */
import { PostgresStore, type PostgresStoreOptions } from '../../shared/storage/postgres-store.js'
import { silentLogger } from '../../shared/listen/logger.js'
import { Database } from './database.js'
import { migrate } from './schema.js'

/** Connects to `url`, migrates the schema, and returns a store that closes the connection with itself. */
export async function openPostgresStore (url: string, options: PostgresStoreOptions = {}): Promise<PostgresStore> {
  const db = new Database(url, { logger: silentLogger })
  try {
    await migrate(db)
  } catch (error) {
    await db.close()
    throw error
  }
  return new PostgresStore(db, options, true)
}
