/**
 * How the long-running commands (backup, restore, export, import) report progress. On a
 * terminal: one line on stderr, redrawn in place (a bar, done / total, bytes and rate),
 * with failures printed above it and a summary line at the end. Anywhere else (a pipe, a
 * log file, a test): JSON lines on stdout, which a script can read as they come:
 *
 * ```
 * {"event":"progress","command":"export","unit":"documents","done":40,"total":100,"bytes":81920,"bytesPerSecond":40960}
 * {"event":"failed","command":"import","file":"notes%2F1.yjs","reason":"..."}
 * {"event":"done","command":"export","seconds":2.1,...}
 * ```
 */

/** Where a {@link Progress} writes: a stream, and whether it is a terminal. */
export interface ProgressOutput {
  write(text: string): unknown
  isTTY?: boolean
  columns?: number
}

/** Options of {@link Progress}. */
export interface ProgressOptions {
  /** The command, named in every line. */
  command: string
  /** What `done` and `total` count ("documents", "pages"). */
  unit: string
  /** The terminal the bar is drawn on, if it is one. Default `process.stderr`. */
  terminal?: ProgressOutput
  /** Where JSON lines go when {@link terminal} is not a terminal. Default `process.stdout`. */
  lines?: ProgressOutput
  /** Least milliseconds between two progress reports. Default 100 on a terminal, 1000 otherwise. */
  intervalMs?: number
}

/** Fields of a failure or summary line: plain JSON values. */
export type Fields = Record<string, string | number | boolean | null>

const BAR_WIDTH = 24

/** Reports one run's progress; see the module comment. */
export class Progress {
  private readonly tty: boolean
  private readonly terminal: ProgressOutput
  private readonly lines: ProgressOutput
  private readonly intervalMs: number
  private readonly started: number
  private total = 0
  private done = 0
  private bytes = 0
  /** When progress was last reported (-Infinity: never). */
  private reported = -Infinity
  /** Whether the bar is on screen, so that other output clears it first. */
  private drawn = false

  constructor (private readonly options: ProgressOptions) {
    this.terminal = options.terminal ?? process.stderr
    this.lines = options.lines ?? process.stdout
    this.tty = this.terminal.isTTY === true
    this.intervalMs = options.intervalMs ?? (this.tty ? 100 : 1000)
    this.started = this.now()
  }

  /** Milliseconds on the monotonic clock (rates and intervals never jump with the wall clock). */
  private now (): number {
    return performance.now()
  }

  /** Sets how many units the run has, and reports at once. */
  start (total: number): void {
    this.total = total
    this.report()
  }

  /** Sets how far the run has got (units done, bytes so far); reported at most every interval. */
  update (done: number, bytes: number): void {
    this.done = done
    this.bytes = bytes
    if (this.now() - this.reported >= this.intervalMs) this.report()
  }

  /** Adds one unit done, of `bytes` bytes. */
  advance (bytes: number): void {
    this.update(this.done + 1, this.bytes + bytes)
  }

  /** Reports something that failed while the run goes on; `reason` says why. */
  failed (fields: Fields & { reason: string }): void {
    if (!this.tty) return this.line({ event: 'failed', command: this.options.command, ...fields })
    const { reason, ...what } = fields
    this.clear()
    this.terminal.write(`${this.options.command}: ${Object.values(what).join(' ')}: ${reason}\n`)
    this.draw()
  }

  /** Ends the run: a last progress report, then the summary (`text` on a terminal, `fields` as JSON otherwise). */
  finish (text: string, fields: Fields): void {
    this.report()
    const seconds = Math.round((this.now() - this.started) / 10) / 100
    if (!this.tty) return this.line({ event: 'done', command: this.options.command, ...fields, seconds })
    this.terminal.write(`\n${this.options.command}: ${text} in ${seconds} s\n`)
    this.drawn = false
  }

  private report (): void {
    this.reported = this.now()
    if (this.tty) return this.draw()
    this.line({
      event: 'progress',
      command: this.options.command,
      unit: this.options.unit,
      done: this.done,
      total: this.total,
      bytes: this.bytes,
      bytesPerSecond: Math.round(this.rate())
    })
  }

  private draw (): void {
    const fraction = this.total === 0 ? 1 : Math.min(1, this.done / this.total)
    const filled = Math.round(fraction * BAR_WIDTH)
    const bar = `[${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}]`
    const text = `${this.options.command} ${bar} ${this.done}/${this.total} ${this.options.unit}  ${formatBytes(this.bytes)}  ${formatBytes(this.rate())}/s`
    // Wider than the terminal, the line would wrap and \r would no longer redraw it.
    const columns = this.terminal.columns !== undefined && this.terminal.columns > 0 ? this.terminal.columns : 80
    this.terminal.write(`\r${text.slice(0, Math.max(columns - 1, 1))}\x1b[K`)
    this.drawn = true
  }

  private clear (): void {
    if (this.drawn) this.terminal.write('\r\x1b[K')
    this.drawn = false
  }

  private rate (): number {
    const seconds = (this.now() - this.started) / 1000
    return seconds > 0 ? this.bytes / seconds : 0
  }

  private line (value: Fields): void {
    this.lines.write(JSON.stringify(value) + '\n')
  }
}

/** `bytes` for people: 512 B, 1.5 KiB, 3.2 MiB, 1.1 GiB. */
export function formatBytes (bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return unit === 0 ? `${Math.round(value)} B` : `${value.toFixed(1)} ${units[unit]}`
}
