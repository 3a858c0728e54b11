/** The logging the connection code needs: pino's `Logger` fits it, and so does {@link silentLog}. */
export interface Log {
  debug(fields: object, message: string): void
  info(fields: object, message: string): void
  warn(fields: object, message: string): void
  error(fields: object, message: string): void
}

const ignore = (): void => {}

/** A {@link Log} that drops everything. */
export const silentLog: Log = { debug: ignore, info: ignore, warn: ignore, error: ignore }
