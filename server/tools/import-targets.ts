/**
 * Where `petaldb import` applies updates. Either way an update goes through the relay's own
 * checks, the ones a client's update passes, and counts once it is durable:
 *
 * - a data directory no relay runs on: held with its lock while importing, each update
 *   applied through a document registry on its SQLite database, as `POST /v1/docs/<id>`
 *   applies it (relay limits at their defaults);
 * - a running relay: each update sent as `POST /v1/docs/<id>`, whose 200 means durable.
 *   Live clients get the changes at once, a cluster places them on their homes, and a
 *   document's update is bounded by the relay's `--max-frame-bytes`.
 */
import type { Logger } from 'pino'
import { DEFAULT_LIMITS } from '../../shared/listen/limits.js'
import { SqliteStore } from '../../shared/storage/sqlite-store.js'
import type { DocId } from '../../shared/wire/doc-id.js'
import { lockDataDir } from '../data-dir.js'
import { DocumentRegistry } from '../documents/registry.js'
import { relayDatabasePath } from '../data-dir.js'
import { ToolError } from './tool-error.js'

/** Applies updates to documents; see the module comment. */
export interface ImportTarget {
  /** Applies `update` to `docId`; resolves once it is durable, throws with the reason it was refused. */
  apply(docId: DocId, update: Uint8Array): Promise<void>
  /** Releases what the target holds, once every apply has settled. */
  close(): Promise<void>
}

/** Imports into the database of `dataDir`, holding its lock (a `DataDirError` if a relay holds it). */
export function dataDirTarget (dataDir: string, logger: Logger): ImportTarget {
  const lock = lockDataDir(dataDir, 'stop it, or import through it with --relay URL')
  let store: SqliteStore
  try {
    // The relay's own store settings: deleted content is overwritten (see SqliteStore).
    store = new SqliteStore(relayDatabasePath(dataDir), { secureDelete: true })
  } catch (error) {
    lock.release()
    throw error
  }
  const registry = new DocumentRegistry({ store, logger, idleMs: 0, limits: DEFAULT_LIMITS })
  return {
    apply: (docId, update) => registry.with(docId, doc => doc.applyUpdate(update, null)),
    close: async () => {
      registry.closeAll()
      await store.close()
      lock.release()
    }
  }
}

/** Milliseconds to wait for a relay's answer to one document. */
const POST_TIMEOUT_MS = 60_000

/** Imports through the HTTP document API of the relay at `url` (ws://, wss://, http:// or https://). */
export function relayTarget (url: string, token: string | undefined): ImportTarget {
  const base = httpBase(url)
  return {
    apply: async (docId, update) => {
      let response: Response
      try {
        response = await fetch(`${base}/v1/docs/${encodeURIComponent(docId)}`, {
          method: 'POST',
          headers: { 'content-type': 'application/octet-stream', ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
          body: new Uint8Array(update), // a copy on its own ArrayBuffer, as fetch's types want
          signal: AbortSignal.timeout(POST_TIMEOUT_MS)
        })
      } catch (error) {
        if ((error as Error).name === 'TimeoutError') throw new Error(`the relay did not answer within ${POST_TIMEOUT_MS / 1000} s`)
        // Not this document's fault: the run stops.
        const cause = (error as { cause?: { code?: string, message?: string } }).cause
        throw new ToolError(`cannot reach the relay at ${base}: ${cause?.code ?? cause?.message ?? (error as Error).message}`)
      }
      if (response.ok) return
      const answer = await response.text()
      let reason = answer
      try {
        reason = (JSON.parse(answer) as { error?: string }).error ?? answer
      } catch {}
      throw new Error(`the relay answered ${response.status}: ${reason}`)
    },
    close: async () => {}
  }
}

/** The HTTP URL of the relay that listens at `url`, without a trailing slash. */
function httpBase (url: string): string {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new ToolError(`--relay expects a URL such as ws://127.0.0.1:4321, got ${JSON.stringify(url)}`)
  }
  const protocol = ({ 'ws:': 'http:', 'wss:': 'https:', 'http:': 'http:', 'https:': 'https:' } as Record<string, string>)[parsed.protocol]
  if (protocol === undefined) throw new ToolError(`--relay expects a ws://, wss://, http:// or https:// URL, got ${JSON.stringify(url)}`)
  return `${protocol}//${parsed.host}${parsed.pathname.replace(/\/+$/, '')}`
}
