/**
 * A Link is one bidirectional, ordered, message-oriented connection: a WebSocket, or an
 * in-memory pair in tests. Protocol code talks to Links only, so the same session logic
 * runs over every transport.
 */

/**
 * One end of a connection. Assign the handlers before the first message can arrive. They
 * are called as methods of the link (`link.onMessage(message)`), so that one function may
 * serve many links (a relay holds thousands of idle ones).
 */
export interface Link {
  /** Sends one message. Messages sent after the link closed are dropped. */
  send(message: Uint8Array): void
  /** Closes the link; both ends' `onClose` run (the other end's with this code and reason). */
  close(code: number, reason: string): void
  /** Called with each message received. */
  onMessage: (this: Link, message: Uint8Array) => void
  /** Called once when the link closes, from either end. */
  onClose: (this: Link, code: number, reason: string) => void
  /**
   * Counts `bytes` of work done for the other end (an answer to its request) against the
   * rate budget of what it may cost, on transports that keep one (a relay's WebSockets).
   */
  charge?(bytes: number): void
}

/**
 * Decides how a message sent on an in-memory link is delivered: call `deliver` zero
 * (drop), one or several (duplicate) times, now or later (delay). Ordering is the policy's
 * business too: delaying one message but not the next reorders them.
 */
export type DeliveryPolicy = (message: Uint8Array, deliver: () => void) => void

/** Delivery on the next microtask, in order: a well-behaved network. */
export const deliverInOrder: DeliveryPolicy = (_message, deliver) => queueMicrotask(deliver)

/** Two connected in-memory Links; `policy` can delay, drop or duplicate messages. */
export function linkPair (policy: DeliveryPolicy = deliverInOrder): [Link, Link] {
  let open = true
  const make = (): Link => ({
    send (message) {
      if (!open) return
      const copy = message.slice()
      policy(copy, () => { if (open) peer(this).onMessage(copy) })
    },
    close (code, reason) {
      if (!open) return
      open = false
      const other = peer(this)
      queueMicrotask(() => {
        this.onClose(code, reason)
        other.onClose(code, reason)
      })
    },
    onMessage: () => {},
    onClose: () => {}
  })
  const a = make()
  const b = make()
  const peer = (end: Link): Link => end === a ? b : a
  return [a, b]
}
