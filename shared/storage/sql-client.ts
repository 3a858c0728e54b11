/**
 * The little a SQL store needs of a database connection: statements, transactions, a name
 * and closing. A store written against it stays in `shared/`, free of any driver; the relay's
 * PostgreSQL pool (`server/postgres/database.ts`) satisfies it.
 */

/** A row as a driver returns it: column name to value. */
export type SqlRow = Record<string, unknown>

/** Runs statements; inside a transaction, all on one connection. */
export interface SqlQueryable {
  /** Runs `text` with `values` bound to its `$1`, `$2`, ... parameters; resolves with its rows. */
  query<R extends SqlRow = SqlRow>(text: string, values?: unknown[]): Promise<R[]>
}

/** A database a store writes to: statements, transactions, a name and closing. */
export interface SqlClient extends SqlQueryable {
  /** Names the database without secrets (no password), for logs and `DocStore.name`. */
  readonly name: string
  /**
   * Runs `work` in one transaction: committed if it resolves, rolled back if it throws.
   * Resolves only once COMMIT has returned.
   */
  transaction<T>(work: (tx: SqlQueryable) => Promise<T>): Promise<T>
  /** Closes every connection. */
  close(): Promise<void>
}
