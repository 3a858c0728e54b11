/**
 * Editing traces (josephg/editing-traces format) for benchmarks. They are not shipped with
 * PetalDB: set PETALDB_TRACES to a directory holding the `.json.gz` files.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { gunzipSync } from 'node:zlib'

/** One edit: at `pos`, delete `deleted` characters, then insert `inserted`. */
export type Patch = [pos: number, deleted: number, inserted: string]

export interface SequentialTrace {
  endContent: string
  txns: Array<{ patches: Patch[] }>
}

export function loadTrace (name: string): SequentialTrace {
  const dir = process.env.PETALDB_TRACES
  if (dir === undefined) {
    throw new Error('set PETALDB_TRACES to a directory holding the editing traces (e.g. automerge-paper.json.gz)')
  }
  return JSON.parse(gunzipSync(readFileSync(join(dir, `${name}.json.gz`))).toString('utf8')) as SequentialTrace
}

/** Every patch of the trace in order. */
export function patchesOf (trace: SequentialTrace): Patch[] {
  return trace.txns.flatMap(txn => txn.patches)
}
