/**
 * The authentication state of one connection: its current grant, replaced when a native
 * client refreshes its token, and a timer that ends the session when the token expires.
 * Without an authenticator every connection gets the open grant.
 */
import { CloseCode } from '../wire/close-codes.js'
import { OPEN_GRANT, canRead, canWrite, type TokenVerifier, type Grant } from './auth.js'
import { AuthError } from '../errors.js'

/** Timers above this are clamped by Node; re-arm instead. */
const MAX_TIMER_MS = 2 ** 31 - 1

/** See the module comment. */
export class ConnectionAuth {
  private current: Grant = OPEN_GRANT
  private timer: ReturnType<typeof setTimeout> | null = null
  private disposed = false

  /** `onExpired` runs when the token's `exp` passes before a refresh. */
  constructor (private readonly authenticator: TokenVerifier | null, public onExpired: (error: AuthError) => void) {}

  get grant (): Grant {
    return this.current
  }

  /** The user to stamp on awareness states, if the relay authenticates. */
  get user (): string | undefined {
    return this.authenticator === null ? undefined : this.current.sub
  }

  /** Verifies `token` and makes its grant current; throws AuthError (4401) if it is not valid. */
  async authenticate (token: string | null | undefined): Promise<void> {
    if (this.authenticator === null) return
    const grant = await this.authenticator.verify(token)
    this.current = grant
    this.arm(grant.expiresAt)
  }

  /** Uses `grant` (verified elsewhere, e.g. during the HTTP upgrade). */
  adopt (grant: Grant): void {
    this.current = grant
    this.arm(grant.expiresAt)
  }

  canRead (docId: string): boolean {
    return canRead(this.current, docId)
  }

  canWrite (docId: string): boolean {
    return canWrite(this.current, docId)
  }

  /** Stops the expiry timer for good (the connection is gone). */
  dispose (): void {
    this.disposed = true
    this.clearTimer()
  }

  private clearTimer (): void {
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
  }

  private arm (expiresAt: number | null): void {
    this.clearTimer()
    // A verification that finishes after the connection closed must not start a timer.
    if (expiresAt === null || this.disposed) return
    const fire = (): void => {
      const left = expiresAt - Date.now()
      if (left > 0) {
        this.timer = setTimeout(fire, Math.min(left, MAX_TIMER_MS))
        return
      }
      this.timer = null
      this.onExpired(new AuthError(CloseCode.unauthorized, 'token expired'))
    }
    fire()
  }
}
