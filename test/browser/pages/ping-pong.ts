/**
 * Latency by ping-pong between two documents that sync: one sets `ping` to n, the other
 * answers with `pong` = n when it sees it. Half a round trip needs no shared clock. Used by
 * the benchmarks in Node and in pages (bundled with the page entry).
 */
import type * as Y from 'yjs'

/** Makes `doc` answer every ping it sees; returns the way to stop. */
export function answerPings (doc: Y.Doc): () => void {
  const answer = (): void => {
    const ping = doc.getMap('m').get('ping')
    if (typeof ping === 'number' && doc.getMap('m').get('pong') !== ping) doc.getMap('m').set('pong', ping)
  }
  doc.on('update', answer)
  return () => doc.off('update', answer)
}

/** Pings `trips` times from `doc`, one after another; resolves with the half round trips in ms. */
export async function ping (doc: Y.Doc, trips: number): Promise<number[]> {
  const halves: number[] = []
  for (let i = 1; i <= trips; i++) {
    const start = performance.now()
    await new Promise<void>(resolve => {
      const check = (): void => {
        if (doc.getMap('m').get('pong') !== i) return
        doc.off('update', check)
        resolve()
      }
      doc.on('update', check)
      doc.getMap('m').set('ping', i)
    })
    halves.push((performance.now() - start) / 2)
  }
  return halves
}
