/** A pino logger whose entries tests can read and await. */
import { EventEmitter } from 'node:events'
import { Writable } from 'node:stream'
import { pino, type Logger } from 'pino'
import { until } from './events.js'

export interface CapturedLog {
  logger: Logger
  entries: Array<Record<string, unknown>>
  /** Resolves once an entry with message `msg` (and matching `where`) has been logged. */
  waitFor(msg: string, where?: (entry: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>
}

export function captureLog (level = 'debug'): CapturedLog {
  const events = new EventEmitter()
  const entries: Array<Record<string, unknown>> = []
  const stream = new Writable({
    write (chunk, _encoding, done) {
      for (const line of String(chunk).split('\n')) {
        if (line !== '') entries.push(JSON.parse(line))
      }
      events.emit('entry')
      done()
    }
  })
  const find = (msg: string, where?: (entry: Record<string, unknown>) => boolean): Record<string, unknown> | undefined =>
    entries.find(entry => entry.msg === msg && (where === undefined || where(entry)))
  return {
    logger: pino({ level }, stream),
    entries,
    async waitFor (msg, where, timeoutMs) {
      await until(`log entry "${msg}"`, cb => { events.on('entry', cb); return () => events.off('entry', cb) }, () => find(msg, where) !== undefined, timeoutMs)
      return find(msg, where)!
    }
  }
}
