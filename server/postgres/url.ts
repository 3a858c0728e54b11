/** PostgreSQL URLs as the relay prints them. */

/** `url` with its password replaced by `***`, for logs and messages. */
export function withoutPassword (url: string): string {
  return url.replace(/\/\/([^:/@]*):[^@]*@/, '//$1:***@')
}
