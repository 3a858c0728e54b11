/** The error every HTTP route fails with: its status, and a reason sent as `{ "error": message }`. */
export class HttpError extends Error {
  override name = 'HttpError'
  constructor (readonly status: number, message: string) {
    super(message)
  }
}
