/** Frames already encoded for one broadcast, shared by every session with the same framing. */
export class FrameCache {
  private readonly frames = new Map<object, Uint8Array>()

  /** The frame for `key` (a framing), encoding it with `encode` the first time. */
  get (key: object, encode: () => Uint8Array): Uint8Array {
    let frame = this.frames.get(key)
    if (frame === undefined) {
      frame = encode()
      this.frames.set(key, frame)
    }
    return frame
  }
}
