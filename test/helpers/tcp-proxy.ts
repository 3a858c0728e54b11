/** A TCP proxy on loopback that can cut and heal the links through it, for partition tests. */
import { createServer, connect, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'

export interface TcpProxy {
  port: number
  url: string
  /** Connections accepted so far. */
  readonly accepted: number
  /** Destroys every connection through the proxy and refuses new ones until {@link heal}. */
  cut(): void
  heal(): void
  close(): Promise<void>
}

/** Forwards 127.0.0.1:<port> to 127.0.0.1:<target()>. */
export async function tcpProxy (target: () => number): Promise<TcpProxy> {
  const sockets = new Set<Socket>()
  let cut = false
  let accepted = 0
  const server = createServer(client => {
    if (cut) return client.destroy()
    accepted++
    const upstream = connect(target(), '127.0.0.1')
    for (const [a, b] of [[client, upstream], [upstream, client]] as const) {
      sockets.add(a)
      a.on('error', () => b.destroy())
      a.on('close', () => { sockets.delete(a); b.destroy() })
      a.pipe(b)
    }
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    port,
    url: `ws://127.0.0.1:${port}`,
    get accepted () {
      return accepted
    },
    cut () {
      cut = true
      for (const socket of sockets) socket.destroy()
    },
    heal () { cut = false },
    close: () => new Promise(resolve => {
      for (const socket of sockets) socket.destroy()
      server.close(() => resolve())
    })
  }
}
