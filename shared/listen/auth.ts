/**
 * Token authentication: JWTs signed with HS256 (through `jose`), with a `kid` header
 * selecting among several keys so keys can rotate. Claims: `sub` (the user), `read` and
 * `write` (document ids; a trailing `*` matches a prefix, `notes/*` matches `notes/1` but
 * not `notesX`), `exp`. Write access implies read access.
 */
import { AuthError } from '../errors.js'
import type { JWTPayload } from 'jose'
import { importPeer } from '../node-peers.js'
import { CloseCode } from '../wire/close-codes.js'

/** What a verified token allows. */
export interface Grant {
  /** The user (`sub` claim). */
  sub: string
  read: string[]
  write: string[]
  /** Expiry in milliseconds since the epoch, or null if the token does not expire. */
  expiresAt: number | null
}

/** A grant that allows everything: used when the relay has no auth secret. */
export const OPEN_GRANT: Grant = { sub: '', read: ['*'], write: ['*'], expiresAt: null }

function matches (patterns: string[], docId: string): boolean {
  return patterns.some(pattern => pattern.endsWith('*') ? docId.startsWith(pattern.slice(0, -1)) : pattern === docId)
}

/** Whether `grant` allows reading `docId` (write access implies it). */
export const canRead = (grant: Grant, docId: string): boolean => matches(grant.read, docId) || matches(grant.write, docId)

/** Whether `grant` allows writing `docId`. */
export const canWrite = (grant: Grant, docId: string): boolean => matches(grant.write, docId)

function stringArray (value: unknown, claim: string): string[] {
  if (value === undefined) return []
  if (!Array.isArray(value) || !value.every(item => typeof item === 'string')) throw new AuthError(CloseCode.unauthorized, `token claim "${claim}" must be an array of strings`)
  return value
}

/** What checks a connection's or request's token: throws an AuthError (4401) for a bad one, else says what it allows. */
export interface TokenVerifier {
  verify(token: string | null | undefined): Promise<Grant>
}

/** Verifies tokens against a set of keys; see the module comment. */
export class Authenticator implements TokenVerifier {
  private readonly keys: Map<string, Uint8Array>

  /** `keys` maps a `kid` to its secret; the key under '' is used for tokens without `kid`. */
  constructor (keys: Map<string, string>) {
    if (keys.size === 0) throw new Error('an authenticator needs at least one key')
    this.keys = new Map([...keys].map(([kid, secret]) => [kid, new TextEncoder().encode(secret)]))
  }

  /** Verifies `token`; throws {@link AuthError} (4401) if it is missing, malformed, forged or expired. */
  async verify (token: string | null | undefined): Promise<Grant> {
    if (token === null || token === undefined || token === '') throw new AuthError(CloseCode.unauthorized, 'a token is required')
    const { errors, jwtVerify } = await importPeer<typeof import('jose')>('jose', 'Verifying tokens')
    let payload: JWTPayload
    try {
      ({ payload } = await jwtVerify(token, header => {
        const key = this.keys.get(header.kid ?? '')
        // The kid is attacker-controlled and unverified: do not echo it back.
        if (key === undefined) throw new AuthError(CloseCode.unauthorized, 'unknown key id')
        return key
      }, { algorithms: ['HS256'] }))
    } catch (error) {
      if (error instanceof AuthError) throw error
      if (error instanceof errors.JWTExpired) throw new AuthError(CloseCode.unauthorized, 'token expired')
      throw new AuthError(CloseCode.unauthorized, `invalid token: ${(error as Error).message}`)
    }
    if (typeof payload.sub !== 'string' || payload.sub === '') throw new AuthError(CloseCode.unauthorized, 'token has no "sub" claim')
    return {
      sub: payload.sub,
      read: stringArray(payload.read, 'read'),
      write: stringArray(payload.write, 'write'),
      expiresAt: typeof payload.exp === 'number' ? payload.exp * 1000 : null
    }
  }
}

/**
 * Parses `--auth-secret` values: `SECRET` (the default key) or `KID=SECRET`. A secrets file
 * holds one such value per line.
 */
export function parseAuthKeys (values: string[]): Map<string, string> {
  const keys = new Map<string, string>()
  for (const value of values.map(v => v.trim()).filter(v => v !== '' && !v.startsWith('#'))) {
    const withKid = /^([A-Za-z0-9._-]{1,64})=(.+)$/.exec(value)
    const [kid, secret] = withKid !== null && withKid[2]!.length >= 16 ? [withKid[1]!, withKid[2]!] : ['', value]
    if (secret.length < 16) throw new Error(`auth secret${kid === '' ? '' : ` ${kid}`} is shorter than 16 characters`)
    keys.set(kid, secret)
  }
  return keys
}
