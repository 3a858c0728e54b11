import { describe, expect, it } from 'vitest'
import { InvalidDocIdError, MAX_DOC_ID_LENGTH, parseDocId } from '../../shared/wire/doc-id.js'
import { docIdFromUrl } from '../../server/relay.js'

describe('document ids', () => {
  it.each(['notes/1', 'a', 'user@example.com/doc:2', 'x'.repeat(MAX_DOC_ID_LENGTH), 'a.b/c~d_e-f+g=h'])('accepts %s', id => {
    expect(parseDocId(id)).toBe(id)
  })

  it.each([
    ['', /empty/],
    ['x'.repeat(MAX_DOC_ID_LENGTH + 1), /longer than/],
    ['../etc/passwd', /"\.\."/],
    ['a/./b', /"\."/],
    ['/abs', /empty path segment/],
    ['a//b', /empty path segment/],
    ['trailing/', /empty path segment/],
    ['sp ace', /character/],
    ['back\\slash', /character/],
    ['nul\u0000', /character/],
    ['é', /character/]
  ])('rejects %j with a reason', (id, reason) => {
    expect(() => parseDocId(id)).toThrow(InvalidDocIdError)
    expect(() => parseDocId(id)).toThrow(reason)
  })

  it('reads the id from a request path, percent-decoded, without the query', () => {
    expect(docIdFromUrl('/notes/1?token=abc')).toBe('notes/1')
    expect(docIdFromUrl('/notes%2F1')).toBe('notes/1')
    expect(docIdFromUrl('/%E0%A4%A')).toEqual({ problem: expect.stringMatching(/percent-encoding/) })
    expect(docIdFromUrl('/..%2Fsecret')).toEqual({ problem: expect.stringMatching(/"\.\."/) })
    expect(docIdFromUrl('/')).toEqual({ problem: expect.stringMatching(/empty/) })
  })
})
