/**
 * The relay's connection to PostgreSQL (through `pg`, an optional peer dependency): a pool,
 * transactions on one pooled connection, and whether the server is reachable. Every query
 * reports its outcome: the first failure to reach the server is logged as an error, once,
 * and so is its return, so an outage reads as two lines, not one per query. A pooled
 * connection that breaks while idle is dropped with the pool's error event, which
 * would otherwise crash the process.
 */
import type pg from 'pg'
import { requirePeer } from '../../shared/node-peers.js'
import type { Logger } from '../../shared/listen/logger.js'
import type { SqlClient } from '../../shared/storage/sql-client.js'
import { withoutPassword } from './url.js'

const { Pool, DatabaseError } = requirePeer<typeof pg>('pg', 'Storing documents in PostgreSQL')

/** Runs statements on one connection, inside a transaction. */
export interface Transaction {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<R[]>
}

/** Options of {@link Database}. */
export interface DatabaseOptions {
  logger: Logger
  /** Connections in the pool. Default 10. */
  maxConnections?: number
  /** Milliseconds a statement may take before the relay stops waiting for it (its outcome then counts as unknown). Default 10 000. */
  queryTimeoutMs?: number
}

/** What `pg` reports about a failure that is the server's verdict on a statement, not a broken connection. */
function isStatementError (error: unknown): boolean {
  if (!(error instanceof DatabaseError)) return false
  const code = error.code ?? ''
  // Class 08 (connection exception) and 57P (the server is shutting down or starting) mean the server is away.
  return !code.startsWith('08') && !code.startsWith('57P')
}

/** A PostgreSQL database; see the module comment. It is the {@link SqlClient} of a `PostgresStore`. */
export class Database implements SqlClient {
  private readonly pool: pg.Pool
  private readonly logger: Logger
  private reachable: boolean | null = null
  private lastFailure: string | null = null
  private readonly listeners = new Set<(reachable: boolean) => void>()

  /** Connects lazily to `url` (`postgres://user:password@host:port/database`). */
  constructor (readonly url: string, options: DatabaseOptions) {
    this.logger = options.logger
    this.pool = new Pool({
      connectionString: url,
      max: options.maxConnections ?? 10,
      connectionTimeoutMillis: 3000,
      query_timeout: options.queryTimeoutMs ?? 10_000,
      keepAlive: true,
      application_name: 'petaldb-relay'
    })
    this.pool.on('error', error => this.failed(error))
  }

  /** The URL without its password. */
  get name (): string {
    return withoutPassword(this.url)
  }

  /** Whether the last statement reached the server (null before the first). */
  get isReachable (): boolean | null {
    return this.reachable
  }

  /** Why the server was last unreachable, if it is now. */
  get failure (): string | null {
    return this.reachable === false ? this.lastFailure : null
  }

  /** Calls `listener` whenever the server becomes reachable or unreachable; returns the unsubscription. */
  onReachability (listener: (reachable: boolean) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** Runs one statement (its own transaction) and returns its rows. */
  async query<R extends pg.QueryResultRow = pg.QueryResultRow> (text: string, values?: unknown[]): Promise<R[]> {
    try {
      const result = await this.pool.query<R>(text, values)
      this.succeeded()
      return result.rows
    } catch (error) {
      this.judge(error)
      throw error
    }
  }

  /**
   * Runs `work` in a transaction on one connection: committed if it resolves, rolled back if
   * it throws. Resolves only once COMMIT has returned; if the connection breaks first, the
   * outcome is unknown and it rejects.
   */
  async transaction<T> (work: (tx: Transaction) => Promise<T>, begin = 'BEGIN'): Promise<T> {
    let client: pg.PoolClient
    try {
      client = await this.pool.connect()
    } catch (error) {
      this.judge(error)
      throw error
    }
    let broken: unknown
    // A connection that breaks while checked out emits an error event too: without a listener it would crash the process.
    const onError = (error: Error): void => { broken = error }
    client.on('error', onError)
    try {
      await client.query(begin)
      const result = await work({
        query: async <R extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<R[]> => (await client.query<R>(text, values)).rows
      })
      await client.query('COMMIT')
      this.succeeded()
      return result
    } catch (error) {
      this.judge(error)
      if (isStatementError(error)) await client.query('ROLLBACK').catch((rollback: unknown) => { broken = rollback })
      else broken = error
      throw error
    } finally {
      client.off('error', onError)
      // A connection that failed mid-transaction is not given back to the pool.
      client.release(broken === undefined ? undefined : broken instanceof Error ? broken : true)
    }
  }

  /** Closes every connection. */
  async close (): Promise<void> {
    await this.pool.end()
  }

  private judge (error: unknown): void {
    if (isStatementError(error)) this.succeeded()
    else this.failed(error)
  }

  private succeeded (): void {
    if (this.reachable === true) return
    if (this.reachable === false) this.logger.info({}, 'PostgreSQL is reachable again')
    this.reachable = true
    for (const listener of this.listeners) listener(true)
  }

  private failed (error: unknown): void {
    this.lastFailure = (error as Error)?.message ?? String(error)
    if (this.reachable === false) return
    this.reachable = false
    this.logger.error({ err: error }, `PostgreSQL is unreachable (${this.lastFailure}): no write is acknowledged until it is back`)
    for (const listener of this.listeners) listener(false)
  }
}
