/**
 * A document as JSON, for `GET /v1/docs/<id>?format=json`: each root type rendered by what
 * it holds. An update does not say which kind of type a root is (Yjs learns that when an
 * app calls `getMap` or `getText`), so the kind is read from the root's content: keys make
 * a map, XML elements or XML text make an XML fragment, strings and formatting make a
 * text, anything else in sequence makes an array.
 */
import * as Y from 'yjs'

/** The root types of the document `update` holds, by name, rendered as JSON values. */
export function documentJson (update: Uint8Array): Record<string, unknown> {
  const doc = new Y.Doc()
  try {
    Y.applyUpdate(doc, update)
    const rendered: Record<string, unknown> = {}
    for (const name of [...doc.share.keys()].sort()) rendered[name] = renderRoot(doc, name)
    return rendered
  } finally {
    doc.destroy()
  }
}

function renderRoot (doc: Y.Doc, name: string): unknown {
  switch (kindOf(doc.share.get(name)!)) {
    case 'map': return doc.getMap(name).toJSON()
    case 'xml': return doc.getXmlFragment(name).toString()
    case 'text': return doc.getText(name).toString()
    case 'array': return doc.getArray(name).toJSON()
  }
}

function kindOf (type: { _start: Y.Item | null }): 'map' | 'xml' | 'text' | 'array' {
  if (type._start === null) return 'map'
  for (let item: Y.Item | null = type._start; item !== null; item = item.right) {
    const content = item.content
    if (content instanceof Y.ContentType) return content.type instanceof Y.XmlElement || content.type instanceof Y.XmlText ? 'xml' : 'array'
    if (content instanceof Y.ContentString || content instanceof Y.ContentFormat || content instanceof Y.ContentEmbed) return 'text'
    if (content instanceof Y.ContentAny || content instanceof Y.ContentBinary || content instanceof Y.ContentJSON || content instanceof Y.ContentDoc) return 'array'
  }
  // Only deleted content left: it renders the same either way.
  return 'array'
}
