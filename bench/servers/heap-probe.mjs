// Preloaded by bench/heap-split.ts into the server under study: on SIGUSR1 it writes a heap
// snapshot (which collects garbage first) to HEAP_PROBE_DIR/<n>.heapsnapshot, then an
// empty <n>.done beside it to say the snapshot is complete.
import { writeFileSync } from 'node:fs'
import { writeHeapSnapshot } from 'node:v8'

let taken = 0
process.on('SIGUSR1', () => {
  const base = `${process.env.HEAP_PROBE_DIR}/${taken++}`
  writeHeapSnapshot(`${base}.heapsnapshot`)
  writeFileSync(`${base}.done`, '')
})
