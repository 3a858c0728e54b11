/**
 * Answering state vectors cannot cost the relay a core or its memory: answers are kept per
 * state vector until the next write, diffing is bounded (past its share of time peers get
 * the whole document), answers are charged to the asker's byte budget, and a large answer's
 * frame is encoded once and shared by every connection it is queued for.
 */
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import * as Y from 'yjs'
import { DiffBudget, SyncAnswers, DIFF_MS_PER_SECOND } from '../../server/documents/sync-answers.js'
import { startRelay, type Relay } from '../../server/relay.js'
import { encodeSyncStep1, encodeSyncUpdate } from '../../shared/wire/y-messages.js'
import { once } from '../helpers/events.js'
import { SyncSession, type DocumentHost } from '../../shared/sync/session.js'
import { nativeFraming } from '../../shared/sync/framing.js'
import { parseDocId } from '../../shared/wire/doc-id.js'
import { captureLog } from '../helpers/log-capture.js'
import { tempDir } from '../helpers/temp.js'

const root = tempDir()
let n = 0
let relay: Relay | null = null
afterEach(async () => { await relay?.close(); relay = null })

describe('sync answers', () => {
  it('keeps answers per state vector, and answers with the whole document once diffing used its time', () => {
    const answers = new SyncAnswers(new DiffBudget())
    const whole = new Uint8Array([1])
    let diffs = 0
    const slowDiff = (): Uint8Array => {
      diffs++
      const until = performance.now() + 2 * DIFF_MS_PER_SECOND
      while (performance.now() < until) {} // a diff of a very large document
      return new Uint8Array([2])
    }
    const sv = (client: number): Uint8Array => Y.encodeStateVector(new Map([[client, 1]]))
    expect(answers.answer(sv(1), slowDiff, () => whole)).toEqual(new Uint8Array([2]))
    expect(answers.answer(sv(1), slowDiff, () => whole)).toEqual(new Uint8Array([2])) // kept
    expect(diffs).toBe(1)
    expect(answers.answer(sv(2), slowDiff, () => whole)).toBe(whole) // out of diffing time
    expect(diffs).toBe(1)
    answers.clear()
  })
})

async function relayWithBigDocument (limits: NonNullable<Parameters<typeof startRelay>[0]>['limits'] = {}, megabytes = 4): Promise<{ relay: Relay, bytes: number }> {
  relay = await startRelay({ port: 0, dataDir: join(root, `relay-${n++}`), limits, logger: captureLog('warn').logger })
  const doc = new Y.Doc()
  doc.getText('t').insert(0, 'x'.repeat(megabytes * 1024 * 1024))
  const update = Y.encodeStateAsUpdate(doc)
  const writer = new WebSocket(`${relay.url}/big`, { maxPayload: 64 * 1024 * 1024 })
  await once(writer, 'open')
  writer.send(encodeSyncUpdate(update))
  // Once the relay answers a fresh client with the whole document, it holds it.
  const check = new WebSocket(`${relay.url}/big`, { maxPayload: 64 * 1024 * 1024 })
  await once(check, 'open')
  check.send(encodeSyncStep1(new Uint8Array([0])))
  await new Promise<void>(resolve => check.on('message', (data: Buffer) => { if (data[0] === 0 && data[1] === 1 && data.length > update.length) resolve() }))
  check.close()
  writer.close()
  return { relay, bytes: update.length }
}

describe('requests for a large document', () => {
  it('charges answers to the asker: asking far beyond its byte rate closes it (1008)', async () => {
    const { relay } = await relayWithBigDocument({ maxBytesPerSecond: 4 * 1024 * 1024, maxBufferedBytes: 256 * 1024 * 1024 })
    const ws = new WebSocket(`${relay.url}/big`, { maxPayload: 64 * 1024 * 1024 })
    ws.on('error', () => {})
    await once(ws, 'open')
    for (let i = 0; i < 16; i++) ws.send(encodeSyncStep1(new Uint8Array([0]))) // 64 MiB of answers: 16 s of budget
    const [code, reason] = await once<[number, Buffer]>(ws, 'close', 20_000)
    expect(code).toBe(1008)
    expect(reason.toString()).toMatch(/bytes per second/)
  })

  it('encodes a large answer once: every session sends the same frame, so queued copies are shared', () => {
    const update = new Uint8Array(128 * 1024).fill(7)
    const host = { docId: 'big', stateVector: () => new Uint8Array([0]), missingFor: () => update, readyToShare: () => null, awarenessStates: () => null, attach: () => {}, detach: () => {}, synced: () => {} } as unknown as DocumentHost
    const sent: Uint8Array[][] = [[], []]
    for (const frames of sent) {
      const session = new SyncSession({ docId: parseDocId('big'), peer: { peerId: '', isRelay: false }, framing: nativeFraming, send: frame => frames.push(frame), onError: error => { throw error } })
      session.bind(host)
      session.receive({ type: 'open', stateVector: new Uint8Array([0]) })
    }
    expect(sent[0]![0]!.length).toBeGreaterThan(update.length)
    expect(sent[1]![0]).toBe(sent[0]![0])
  })
})
