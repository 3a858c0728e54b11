/** Searching a data directory's files for bytes, to check that deleted content is gone from disk. */
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'

/** Whether `marker` appears in any file under `dir`. */
export function onDisk (dir: string, marker: string): boolean {
  const needle = Buffer.from(marker)
  for (const name of readdirSync(dir)) {
    const path = join(dir, name)
    if (statSync(path).isDirectory() ? onDisk(path, marker) : readFileSync(path).includes(needle)) return true
  }
  return false
}
