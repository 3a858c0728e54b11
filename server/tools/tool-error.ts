/**
 * The error of a tool (backup, restore, export, import) that cannot do what it was asked:
 * its message says why in one line, naming the file or directory, and the command prints
 * just that. Any other error is a bug, and is printed with its stack.
 */

/** See the module comment. */
export class ToolError extends Error {
  override name = 'ToolError'
}
