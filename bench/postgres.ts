/**
 * The PostgreSQL server of a benchmark run: one throwaway server (the tests' helper, with
 * fsync on, as a production server runs), started on first use and stopped by run.ts at the
 * end, with one database per key (a scenario's data directory, so a relay restarted on the
 * same directory finds its documents).
 */
import { startPostgres, type TestPostgres } from '../test/helpers/postgres.js'

let server: Promise<TestPostgres> | null = null
const databases = new Map<string, Promise<string>>()

/** The URL of the benchmark database for `key`, created on first use. */
export async function benchDatabase (key: string): Promise<string> {
  server ??= startPostgres({ fsync: true })
  const postgres = await server
  let url = databases.get(key)
  if (url === undefined) {
    url = postgres.createDatabase()
    databases.set(key, url)
  }
  return await url
}

/** Stops the server, if one was started. */
export async function stopBenchPostgres (): Promise<void> {
  if (server === null) return
  const postgres = await server
  server = null
  databases.clear()
  await postgres.destroy()
}
