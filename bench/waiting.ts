/** Waiting helpers of the attack-figure scripts, which poll what they cannot subscribe to and never wait without a bound. */

export const sleep = (delay: number): Promise<void> => new Promise(resolve => setTimeout(resolve, delay))

/** Resolves true once `check()` holds (re-checked every 20 ms), false after `timeoutMs`. */
export async function until (check: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > end) return false
    await sleep(20)
  }
  return true
}

/** Resolves with the value of `promise`, or `fallback` after `timeoutMs`. */
export const within = <T>(promise: Promise<T>, timeoutMs: number, fallback: T): Promise<T> =>
  Promise.race([promise, new Promise<T>(resolve => setTimeout(() => resolve(fallback), timeoutMs))])
