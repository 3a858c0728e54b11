/** Signed test tokens (HS256 JWTs), as an application server would mint them. */
import { SignJWT } from 'jose'

export interface TokenClaims {
  sub?: string
  read?: string[]
  write?: string[]
  /** Seconds from now; negative for an expired token. Default one hour. */
  expiresIn?: number
  kid?: string
}

export async function signToken (secret: string, claims: TokenClaims = {}): Promise<string> {
  const { sub = 'ann', read, write, expiresIn = 3600, kid } = claims
  return new SignJWT({ ...(read === undefined ? {} : { read }), ...(write === undefined ? {} : { write }) })
    .setProtectedHeader({ alg: 'HS256', ...(kid === undefined ? {} : { kid }) })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + expiresIn)
    .sign(new TextEncoder().encode(secret))
}
