/**
 * The progress of long-running commands: a bar redrawn in place on a terminal, JSON lines
 * anywhere else, both ending with a summary, with failures reported as they happen.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { Progress, formatBytes, type ProgressOutput } from '../../server/tools/progress.js'

/** A stream that records what is written to it. */
function output (isTTY: boolean): ProgressOutput & { text: string } {
  const out = { text: '', isTTY, columns: 100, write: (chunk: string) => { out.text += chunk } }
  return out
}

describe('progress', () => {
  // Progress reads performance.now(): a fake clock moves it exactly.
  beforeEach(() => { vi.useFakeTimers({ toFake: ['performance'] }) })
  afterEach(() => { vi.useRealTimers() })

  it('draws one line in place on a terminal, failures above it, and a summary', () => {
    const terminal = output(true)
    const lines = output(false)
    const progress = new Progress({ command: 'export', unit: 'documents', terminal, lines, intervalMs: 100 })
    progress.start(4)
    vi.advanceTimersByTime(1000)
    progress.advance(2048)
    vi.advanceTimersByTime(50)
    progress.advance(2048) // within the interval: not drawn
    progress.failed({ id: 'notes/1', reason: 'invalid' })
    vi.advanceTimersByTime(950)
    progress.advance(1024)
    progress.finish('3 documents written', { exported: 3 })
    expect(lines.text).toBe('')
    const redraws = terminal.text.split('\r').filter(part => part.startsWith('export ['))
    expect(redraws[0]).toContain('0/4 documents')
    expect(redraws.some(part => part.includes('1/4 documents') && part.includes('2.0 KiB') && part.includes('2.0 KiB/s'))).toBe(true)
    // The second document came within the interval: drawn only with the failure, which redraws the bar below it.
    const [beforeFailure, afterFailure] = terminal.text.split('export: notes/1: invalid\n')
    expect(beforeFailure).not.toContain('2/4')
    expect(afterFailure).toMatch(/^\rexport \[.*\] 2\/4 documents/)
    expect(redraws.at(-1)).toContain('[##################------] 3/4 documents')
    expect(terminal.text).toContain('\r\x1b[Kexport: notes/1: invalid\n')
    expect(terminal.text).toMatch(/\nexport: 3 documents written in 2 s\n$/)
  })

  it('writes JSON lines elsewhere: progress at most every interval, failures, and a summary', () => {
    const terminal = output(false)
    const lines = output(false)
    const progress = new Progress({ command: 'import', unit: 'documents', terminal, lines, intervalMs: 1000 })
    progress.start(2)
    vi.advanceTimersByTime(10)
    progress.advance(100)
    progress.failed({ file: 'a.yjs', id: 'a', reason: 'the relay answered 400: bad' })
    vi.advanceTimersByTime(1990)
    progress.advance(0)
    progress.finish('1 imported', { imported: 1, failed: 1 })
    expect(terminal.text).toBe('')
    expect(lines.text.split('\n').filter(Boolean).map(line => JSON.parse(line))).toEqual([
      { event: 'progress', command: 'import', unit: 'documents', done: 0, total: 2, bytes: 0, bytesPerSecond: 0 },
      { event: 'failed', command: 'import', file: 'a.yjs', id: 'a', reason: 'the relay answered 400: bad' },
      { event: 'progress', command: 'import', unit: 'documents', done: 2, total: 2, bytes: 100, bytesPerSecond: 50 },
      { event: 'progress', command: 'import', unit: 'documents', done: 2, total: 2, bytes: 100, bytesPerSecond: 50 },
      { event: 'done', command: 'import', imported: 1, failed: 1, seconds: 2 }
    ])
  })

  it('formats sizes for people', () => {
    expect([0, 1023, 1536, 5 * 1024 * 1024, 3 * 1024 ** 3].map(formatBytes)).toEqual(['0 B', '1023 B', '1.5 KiB', '5.0 MiB', '3.0 GiB'])
  })
})
