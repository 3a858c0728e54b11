/**
 * Settings of load placement (relays on PostgreSQL): when a relay carrying well above its
 * share hands documents to the least loaded relay, and what keeps it stable. Every field has
 * a default; `parsePlacementSpec` reads the `--placement` flag.
 */

/** Settings of load placement; see {@link DEFAULT_PLACEMENT} for the defaults. */
export interface PlacementOptions {
  /** A relay moves documents away once its updates/s (or bytes in memory) exceed this multiple of the live relays' mean. Default 1.5. */
  ratio?: number
  /** Once moving, it goes on until it is at most this multiple of the mean (hysteresis). Default 1.2. */
  goalRatio?: number
  /** Below this rate a relay never moves documents for their rate, however skewed. Default 200 updates/s. */
  minUpdatesPerSecond?: number
  /** Below this many bytes of documents in memory a relay never moves documents for their size. Default 64 MiB. */
  minBytes?: number
  /** Consecutive load reports a relay must be over the ratio before it moves anything. Default 2. */
  sustainReports?: number
  /** Moves a relay makes per minute at most. Default 6. */
  maxMovesPerMinute?: number
  /** Milliseconds a moved document stays where it went (it is not moved again, nor back, sooner). Default 300 000. */
  cooldownMs?: number
  /** A move must leave the target this fraction of the mean below the source. Default 0.1. */
  margin?: number
  /** Time constant of the rates' moving average, in milliseconds. Default 3000. */
  windowMs?: number
  /** Hottest and biggest documents each relay publishes. Default 8. */
  hotDocuments?: number
}

/** Every setting, defaulted. */
export type PlacementSettings = Required<PlacementOptions>

/** The defaults of {@link PlacementOptions}. */
export const DEFAULT_PLACEMENT: PlacementSettings = {
  ratio: 1.5,
  goalRatio: 1.2,
  minUpdatesPerSecond: 200,
  minBytes: 64 * 1024 * 1024,
  sustainReports: 2,
  maxMovesPerMinute: 6,
  cooldownMs: 300_000,
  margin: 0.1,
  windowMs: 3000,
  hotDocuments: 8
}

/** `options` with defaults; throws on a value out of range. */
export function placementSettings (options: PlacementOptions = {}): PlacementSettings {
  const settings = { ...DEFAULT_PLACEMENT }
  for (const [key, value] of Object.entries(options) as Array<[keyof PlacementOptions, number | undefined]>) {
    if (value === undefined) continue
    if (!(key in DEFAULT_PLACEMENT)) throw new Error(`unknown placement setting ${JSON.stringify(key)}`)
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw new Error(`placement setting ${key} must be a non-negative number, got ${String(value)}`)
    settings[key] = value
  }
  if (settings.ratio < 1) throw new Error(`placement ratio must be at least 1, got ${settings.ratio}`)
  settings.goalRatio = Math.min(Math.max(1, settings.goalRatio), settings.ratio)
  settings.sustainReports = Math.max(1, Math.round(settings.sustainReports))
  settings.hotDocuments = Math.min(64, Math.max(1, Math.round(settings.hotDocuments)))
  settings.windowMs = Math.max(100, settings.windowMs)
  return settings
}

/** The names of `--placement` (kebab-case) and the settings they set. */
const SPEC_KEYS: Record<string, keyof PlacementOptions> = {
  ratio: 'ratio',
  goal: 'goalRatio',
  'min-rate': 'minUpdatesPerSecond',
  'min-bytes': 'minBytes',
  sustain: 'sustainReports',
  'moves-per-minute': 'maxMovesPerMinute',
  'cooldown-ms': 'cooldownMs',
  margin: 'margin',
  'window-ms': 'windowMs',
  'hot-documents': 'hotDocuments'
}

/**
 * Reads `--placement`: `off`, or comma-separated `name=value` pairs (`ratio=1.5,min-rate=200`);
 * names: ratio, goal, min-rate, min-bytes, sustain, moves-per-minute, cooldown-ms, margin,
 * window-ms, hot-documents. Throws an Error saying what is wrong.
 */
export function parsePlacementSpec (spec: string): PlacementOptions | false {
  if (spec === 'off' || spec === 'false') return false
  const options: PlacementOptions = {}
  for (const pair of spec.split(',').map(part => part.trim()).filter(part => part !== '' && part !== 'on')) {
    const [name = '', value = ''] = pair.split('=', 2)
    const key = SPEC_KEYS[name]
    if (key === undefined) throw new Error(`--placement: unknown setting ${JSON.stringify(name)} (known: ${Object.keys(SPEC_KEYS).join(', ')})`)
    const number = Number(value)
    if (value === '' || !Number.isFinite(number) || number < 0) throw new Error(`--placement: ${name} expects a non-negative number, got ${JSON.stringify(value)}`)
    options[key] = number
  }
  placementSettings(options)
  return options
}
