/** Small helpers to await events instead of sleeping. */
import type { EventEmitter } from 'node:events'

/**
 * Resolves once `check()` is true, re-checking whenever `subscribe` reports a change.
 * Rejects after `timeoutMs` with `what` in the message, so a hang names what it waited for.
 */
export function until (what: string, subscribe: (onChange: () => void) => () => void, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    if (check()) return resolve()
    const timer = setTimeout(() => {
      unsubscribe()
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`))
    }, timeoutMs)
    const unsubscribe = subscribe(() => {
      if (!check()) return
      clearTimeout(timer)
      unsubscribe()
      resolve()
    })
  })
}

/** Resolves with the arguments of the next `event` emitted by `emitter`. */
export function once<T extends unknown[] = unknown[]> (emitter: EventEmitter, event: string, timeoutMs = 10_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, listener)
      reject(new Error(`timed out after ${timeoutMs} ms waiting for "${event}"`))
    }, timeoutMs)
    const listener = (...args: unknown[]): void => {
      clearTimeout(timer)
      resolve(args as T)
    }
    emitter.once(event, listener)
  })
}
