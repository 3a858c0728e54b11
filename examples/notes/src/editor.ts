/**
 * The note editor: CodeMirror 6 bound to the note's Y.Text and awareness with
 * y-codemirror.next, which also draws the other people's cursors and names.
 */
import { EditorState } from '@codemirror/state'
import { EditorView, drawSelection, keymap, placeholder } from '@codemirror/view'
import { defaultKeymap, indentWithTab } from '@codemirror/commands'
import { yCollab, yUndoManagerKeymap } from 'y-codemirror.next'
import type { DocHandle } from '../../../client/index.js'

/** The root type holding a note's text. */
export const TEXT = 'body'

const theme = EditorView.theme({
  '&': { fontSize: '16px', height: '100%' },
  '&.cm-focused': { outline: 'none' },
  '.cm-scroller': { fontFamily: 'inherit', lineHeight: '1.6' },
  '.cm-content': { padding: '20px 0', caretColor: 'var(--ink)' },
  '.cm-line': { padding: '0 28px' },
  // The first line is the note's title. (Only while it is drawn first: a long note scrolled
  // down starts with a gap element instead, and then the title is off screen anyway.)
  '.cm-content > .cm-line:first-child': { fontSize: '22px', fontWeight: '600', paddingBottom: '4px' },
  // Names next to remote cursors always, not only on hover: who is where matters here.
  '.cm-ySelectionCaret > .cm-ySelectionInfo': { opacity: '1', fontFamily: 'inherit', fontSize: '11px', borderRadius: '4px', padding: '0 5px' }
})

/** Mounts an editor for `handle`'s note in `parent`; returns the view (destroy it to unmount). */
export function mountEditor (parent: HTMLElement, handle: DocHandle): EditorView {
  const text = handle.ydoc.getText(TEXT)
  return new EditorView({
    parent,
    state: EditorState.create({
      doc: text.toString(),
      extensions: [
        // Undo and redo come from yCollab's Y.UndoManager (local edits only), not CodeMirror's history.
        keymap.of([...yUndoManagerKeymap, ...defaultKeymap, indentWithTab]),
        drawSelection(),
        EditorView.lineWrapping,
        placeholder('Start writing. The first line is the title.'),
        EditorView.contentAttributes.of({ 'aria-label': 'Note text' }),
        theme,
        yCollab(text, handle.awareness)
      ]
    })
  })
}
