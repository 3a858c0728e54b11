/**
 * The packages only Node parts need (SQLite, the `ws` WebSocket library, and for a relay its
 * logger and token library) are optional peer dependencies: a browser app that installs
 * PetalDB gets no native module and no server-only package. Node parts load them here, and
 * say how to install them when they are missing.
 */
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)

/** Loads the CommonJS package `name`, which `what` needs, or throws an error saying how to install it. */
export function requirePeer<T> (name: string, what: string): T {
  try {
    return require(name) as T
  } catch (error) {
    if ((error as { code?: string }).code === 'MODULE_NOT_FOUND' && missing([name]).length > 0) throw new Error(`${what} needs the "${name}" package, which is not installed: npm install ${name}`)
    throw error
  }
}

/** Loads the ES module package `name`, which `what` needs, or rejects with an error saying how to install it. */
export async function importPeer<T> (name: string, what: string): Promise<T> {
  if (missing([name]).length > 0) throw new Error(`${what} needs the "${name}" package, which is not installed: npm install ${name}`)
  return await import(name) as T
}

/** Which of `names` cannot be found from here. */
export function missing (names: string[]): string[] {
  return names.filter(name => {
    try {
      import.meta.resolve(name)
      return false
    } catch {
      return true
    }
  })
}
