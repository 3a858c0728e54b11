/**
 * The HTTP document API of one relay process (`npm run bench -- http-api`): durable writes
 * per second (a 200 is sent once the update is committed), with concurrent writers each
 * posting one small update after another to its own document, and the latency of reading
 * the automerge-paper document as a Yjs update and as JSON.
 */
import * as Y from 'yjs'
import { paper, tempDataDir, type Figures } from './compare.js'
import { startServer } from './servers.js'
import { percentile } from './stats.js'

const WRITERS = 16
const WRITES_PER_WRITER = 200
const READS = 30

/** See the module comment. */
export async function httpApi (): Promise<Figures> {
  const server = await startServer('petaldb', tempDataDir(), true)
  try {
    const base = server.url.replace(/^ws/, 'http')
    const post = async (docId: string, body: Uint8Array): Promise<void> => {
      const response = await fetch(`${base}/v1/docs/${docId}`, { method: 'POST', body: new Uint8Array(body) })
      await response.arrayBuffer()
      if (response.status !== 200) throw new Error(`POST ${docId} answered ${response.status}`)
    }
    const timed = async (url: string): Promise<number> => {
      const start = performance.now()
      const response = await fetch(url)
      await response.arrayBuffer()
      if (response.status !== 200) throw new Error(`GET ${url} answered ${response.status}`)
      return performance.now() - start
    }

    const started = performance.now()
    await Promise.all(Array.from({ length: WRITERS }, async (_, w) => {
      const doc = new Y.Doc()
      for (let i = 0; i < WRITES_PER_WRITER; i++) {
        const before = Y.encodeStateVector(doc)
        doc.getText('t').insert(0, 'x')
        await post(`bench/http/${w}`, Y.encodeStateAsUpdate(doc, before))
      }
    }))
    const seconds = (performance.now() - started) / 1000

    await post('bench/paper', paper())
    const binary: number[] = []
    const json: number[] = []
    for (let i = 0; i < READS; i++) {
      binary.push(await timed(`${base}/v1/docs/bench/paper`))
      json.push(await timed(`${base}/v1/docs/bench/paper?format=json`))
    }
    binary.sort((a, b) => a - b)
    json.sort((a, b) => a - b)
    return {
      [`durable POSTs per second (${WRITERS} writers)`]: WRITERS * WRITES_PER_WRITER / seconds,
      'automerge-paper update bytes': paper().length,
      'GET binary p50 (ms)': percentile(binary, 0.5),
      'GET binary p99 (ms)': percentile(binary, 0.99),
      'GET JSON p50 (ms)': percentile(json, 0.5),
      'GET JSON p99 (ms)': percentile(json, 0.99)
    }
  } finally {
    await server.stop()
  }
}
