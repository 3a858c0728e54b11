/**
 * The bytes of HTTP request bodies a relay holds while they arrive, bounded per remote
 * address and in all: a body may be as large as `maxFrameBytes`, and a client could
 * otherwise start hundreds of them at once and hold that much memory each.
 */
import type { Limits } from '../../shared/listen/limits.js'
import { HttpError } from './http-error.js'

/** See the module comment. A body takes its bytes as they arrive and gives them back when it ends, fails or is cut off. */
export class BodyBudget {
  private readonly byIp = new Map<string, number>()
  private total = 0

  constructor (private readonly limits: Pick<Limits, 'maxBodyBytesPerIp' | 'maxBodyBytesTotal'>) {}

  /** Bytes held now, in all. */
  get held (): number {
    return this.total
  }

  /** Throws the refusal (429 for the address, 503 for all) if `bytes` more from `ip` would not fit; takes nothing. */
  check (ip: string, bytes: number): void {
    const { maxBodyBytesPerIp, maxBodyBytesTotal } = this.limits
    if ((this.byIp.get(ip) ?? 0) + bytes > maxBodyBytesPerIp) throw new HttpError(429, `more than ${maxBodyBytesPerIp} bytes of request bodies from one address at once; try again later`)
    if (this.total + bytes > maxBodyBytesTotal) throw new HttpError(503, `more than ${maxBodyBytesTotal} bytes of request bodies in all at once; try again later`)
  }

  /** Takes `bytes` for a body from `ip`, or throws as {@link check} does. */
  take (ip: string, bytes: number): void {
    this.check(ip, bytes)
    this.byIp.set(ip, (this.byIp.get(ip) ?? 0) + bytes)
    this.total += bytes
  }

  /** Gives back `bytes` that a body from `ip` took. */
  release (ip: string, bytes: number): void {
    if (bytes === 0) return
    const left = (this.byIp.get(ip) ?? 0) - bytes
    if (left <= 0) this.byIp.delete(ip)
    else this.byIp.set(ip, left)
    this.total -= bytes
  }
}
