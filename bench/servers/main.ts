/**
 * Starts one server under benchmark in this process: `node --import tsx bench/servers/main.ts
 * <kind> <port> <dataDir>`, printing `listening` when ready. Kinds:
 * - `reference`: @y/websocket-server 0.1.1 (the reference y-websocket server), in memory only
 *   (its LevelDB persistence needs a native module we do not build);
 * - `hocuspocus`: @hocuspocus/server, in memory, or with `--persist` storing each document in
 *   a file through the Database extension;
 * - `bare`: a ws server that forwards each frame to every other socket on the same path, the
 *   transport ceiling.
 * PetalDB runs from its own CLI (see servers.ts).
 */
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs'
import { createServer } from 'node:http'
import { join } from 'node:path'
import { WebSocketServer, type WebSocket } from 'ws'

const [kind, portText, dataDir, flag] = process.argv.slice(2) as [string, string, string, string | undefined]
const port = Number(portText)

async function reference (): Promise<void> {
  const { setupWSConnection } = await import('@y/websocket-server/utils')
  const wss = new WebSocketServer({ noServer: true })
  const server = createServer((_req, res) => { res.writeHead(200); res.end('ok') })
  wss.on('connection', (ws, req) => setupWSConnection(ws, req))
  server.on('upgrade', (req, socket, head) => wss.handleUpgrade(req, socket, head, ws => wss.emit('connection', ws, req)))
  await new Promise<void>(resolve => server.listen(port, '127.0.0.1', resolve))
}

async function hocuspocus (): Promise<void> {
  const { Server } = await import('@hocuspocus/server')
  const extensions = []
  if (flag === '--persist') {
    const { Database } = await import('@hocuspocus/extension-database')
    mkdirSync(dataDir, { recursive: true })
    const file = (name: string): string => join(dataDir, encodeURIComponent(name))
    extensions.push(new Database({
      fetch: async ({ documentName }) => existsSync(file(documentName)) ? readFileSync(file(documentName)) : null,
      store: async ({ documentName, state }) => writeFileSync(file(documentName), state)
    }))
  }
  const server = new Server({ port, address: '127.0.0.1', quiet: true, extensions })
  await server.listen()
}

async function bare (): Promise<void> {
  const rooms = new Map<string, Set<WebSocket>>()
  const wss = new WebSocketServer({ port, host: '127.0.0.1' })
  wss.on('connection', (ws, req) => {
    const room = req.url ?? '/'
    let peers = rooms.get(room)
    if (peers === undefined) rooms.set(room, peers = new Set())
    peers.add(ws)
    ws.on('message', (data, isBinary) => {
      for (const peer of peers) if (peer !== ws && peer.readyState === peer.OPEN) peer.send(data, { binary: isBinary })
    })
    ws.on('close', () => peers.delete(ws))
  })
  await new Promise<void>(resolve => wss.on('listening', resolve))
}

const starters: Record<string, () => Promise<void>> = { reference, hocuspocus, bare }
const start = starters[kind]
if (start === undefined) throw new Error(`unknown server kind ${kind}`)
await start()
process.stdout.write('listening\n')
