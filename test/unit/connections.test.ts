import { describe, expect, it } from 'vitest'
import { closeWith } from '../../shared/listen/closing.js'

describe('closing a connection with a reason', () => {
  it.each([0, 1, 2, 3])('keeps the reason within the 123 bytes a close frame allows (multi-byte characters at offset %i)', offset => {
    const reasons: string[] = []
    closeWith({ close: (_code, reason) => reasons.push(reason) }, 4400, 'a'.repeat(116 + offset) + 'é€😀'.repeat(10))
    expect(new TextEncoder().encode(reasons[0]).length).toBeLessThanOrEqual(123)
    expect(reasons[0]).toMatch(/\.\.\.$/)
    expect(reasons[0]).not.toContain('\uFFFD')
  })

  it('does not throw when the socket refuses to close', () => {
    expect(() => closeWith({ close: () => { throw new RangeError('closed') } }, 1000, 'bye')).not.toThrow()
  })
})
