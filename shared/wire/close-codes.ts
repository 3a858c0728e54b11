/**
 * WebSocket close codes used by PetalDB. Stock y-websocket v3 clients stop reconnecting
 * after a code in 4400-4499 (the server decided; retrying cannot help) and retry after
 * any other code, so "try again later" conditions use 4500-4599.
 */
export const CloseCode = {
  /** A normal close (the only code below 3000 that browsers let a client send). */
  normal: 1000,
  /** The relay is shutting down. */
  goingAway: 1001,
  /** A text frame, where only binary frames are defined. */
  unsupportedData: 1003,
  /** A limit was exceeded (rate, documents per connection, awareness, pending updates). */
  policyViolation: 1008,
  /** A frame, update or document larger than the relay's limit. */
  messageTooBig: 1009,
  /** The relay is overloaded for this client (too many connections from one address); retry later. */
  tryAgainLater: 1013,
  /** A malformed message, a malformed Yjs update or an invalid document id. */
  badRequest: 4400,
  /** Missing, invalid or expired credentials (a token, or a relay link's cluster secret). */
  unauthorized: 4401,
  /** The credentials do not allow this (a document the token does not cover, a write on a read-only token). */
  forbidden: 4403,
  /** A peer declines a document it does not have open (a document refusal, not a connection close). */
  notOpenHere: 4404,
  /**
   * Another live connection holds the peer id this HELLO claims: a relay binds each id to one
   * connection at a time, since signaling is addressed by it. Retry later (the other may be a
   * dead socket that the relay's keep-alive has not dropped yet).
   */
  peerIdInUse: 4409,
  /**
   * The document was deleted on the relay (`DELETE /v1/docs/<id>`): its connections are
   * closed (stock clients) or the document refused (native ones), and it stays deleted: a
   * replica that gets this removes its local copy instead of uploading it again.
   */
  deleted: 4410,
  /** The relay could not reach a home of the document; retry later. */
  upstreamUnavailable: 4502,
  /** The document could not be loaded from storage; retry later. */
  documentUnavailable: 4503,
  /** The document is served by another relay now (relays on one database); reconnect. */
  documentMoved: 4504
} as const

/** One of the {@link CloseCode} values. */
export type CloseCode = typeof CloseCode[keyof typeof CloseCode]
