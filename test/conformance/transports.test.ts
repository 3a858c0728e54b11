/**
 * Every transport passes the same conformance suite: the in-memory pair, WebSockets on
 * loopback (the listener's server side and the client side), BroadcastChannel links, and
 * RTCDataChannels (node-datachannel's implementation of the WebRTC API).
 */
import { RTCPeerConnection as NodeRtcPeerConnection } from 'node-datachannel/polyfill'
import { describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { linkPair, type Link } from '../../shared/transport/link.js'
import { connectWebSocket, type WebSocketConstructor } from '../../shared/transport/websocket.js'
import { BroadcastLinks } from '../../shared/transport/broadcast.js'
import { rtcLink, type DataChannel } from '../../shared/transport/rtc.js'
import { listen } from '../../shared/listen/listener.js'
import { DEFAULT_LIMITS } from '../../shared/listen/limits.js'
import { silentLogger } from '../../shared/listen/logger.js'
import { runLinkConformance } from './transport-conformance.js'

runLinkConformance('in-memory pair', async () => ({ pair: linkPair() }))

runLinkConformance('WebSocket', async () => {
  let accepted!: (link: Link) => void
  const serverSide = new Promise<Link>(resolve => { accepted = resolve })
  const listener = await listen({
    host: '127.0.0.1',
    port: 0,
    limits: { ...DEFAULT_LIMITS, maxMessagesPerSecond: 1e6 },
    authenticator: null,
    logger: silentLogger,
    pingIntervalMs: 30_000,
    onNative: accepted,
    onStock: link => link.close(4400, 'native only')
  })
  const client = await connectWebSocket(listener.url, WebSocket as unknown as WebSocketConstructor)
  return { pair: [client, await serverSide], teardown: () => listener.close(100) }
})

let channels = 0
runLinkConformance('BroadcastChannel', async () => {
  const channel = `conformance-${channels++}`
  const links = new Map<string, Link>()
  let both!: () => void
  const ready = new Promise<void>(resolve => { both = resolve })
  const onLink = (side: string) => (link: Link): void => {
    links.set(side, link)
    if (links.size === 2) both()
  }
  const a = new BroadcastLinks({ channel, selfId: 'a', onLink: onLink('a') })
  const b = new BroadcastLinks({ channel, selfId: 'b', onLink: onLink('b') })
  await ready
  return { pair: [links.get('a')!, links.get('b')!], teardown: () => { a.close(); b.close() } }
})

runLinkConformance('RTCDataChannel', async () => {
  const [left, right] = [new NodeRtcPeerConnection(), new NodeRtcPeerConnection()]
  // A candidate may only be added once its connection has the remote description: hold them until then.
  const described = new Map([[left, false], [right, false]])
  const held = new Map<NodeRtcPeerConnection, RTCIceCandidate[]>([[left, []], [right, []]])
  const pass = (to: NodeRtcPeerConnection) => (event: RTCPeerConnectionIceEvent): void => {
    if (event.candidate === null) return
    if (described.get(to) === true) void to.addIceCandidate(event.candidate)
    else held.get(to)!.push(event.candidate)
  }
  const setRemote = async (to: NodeRtcPeerConnection, description: RTCSessionDescriptionInit): Promise<void> => {
    await to.setRemoteDescription(description)
    described.set(to, true)
    for (const candidate of held.get(to)!.splice(0)) void to.addIceCandidate(candidate)
  }
  left.onicecandidate = pass(right)
  right.onicecandidate = pass(left)
  const opened = (channel: DataChannel): Promise<Link> => new Promise(resolve => {
    const ready = (): void => resolve(rtcLink(channel, 1024 * 1024))
    if (channel.readyState === 'open') ready()
    else (channel as unknown as { onopen: () => void }).onopen = ready
  })
  const leftChannel = opened(left.createDataChannel('petaldb') as unknown as DataChannel)
  const rightChannel = new Promise<Link>(resolve => { right.ondatachannel = event => resolve(opened(event.channel as unknown as DataChannel)) })
  const offer = await left.createOffer()
  await left.setLocalDescription(offer)
  await setRemote(right, offer)
  const answer = await right.createAnswer()
  await right.setLocalDescription(answer)
  await setRemote(left, answer)
  return { pair: [await leftChannel, await rightChannel], teardown: () => { left.close(); right.close() } }
})

describe('a data channel whose other end lies about message sizes', () => {
  it('is closed (1009) once the pieces of one message pass the largest message taken, and keeps none of them', () => {
    const sent: Uint8Array[] = []
    const channel: DataChannel = { binaryType: 'blob', readyState: 'open', send: data => sent.push(data), close: () => {}, onmessage: null, onclose: null }
    const link = rtcLink(channel, 64 * 1024)
    const closes: Array<[number, string]> = []
    const messages: Uint8Array[] = []
    link.onClose = (code, reason) => closes.push([code, reason])
    link.onMessage = message => messages.push(message)
    const piece = (kind: number, bytes: number): ArrayBuffer => {
      const frame = new Uint8Array(bytes + 1)
      frame[0] = kind
      return frame.buffer
    }
    // 48 KiB in pieces, then a whole 16 KiB message: at the limit, taken.
    for (let i = 0; i < 3; i++) channel.onmessage!({ data: piece(1, 16 * 1024) })
    channel.onmessage!({ data: piece(0, 16 * 1024) })
    expect(messages.map(message => message.length)).toEqual([64 * 1024])
    // Pieces without end (the attack grew its victim by 276 MB with 256 MiB of them): cut off at the limit.
    for (let i = 0; i < 1000 && closes.length === 0; i++) channel.onmessage!({ data: piece(1, 16 * 1024) })
    expect(closes).toEqual([[1009, 'message larger than 65536 bytes']])
    expect(messages.length).toBe(1)
    expect(sent.at(-1)![0]).toBe(2) // the close frame went out
  })

  it('over a BroadcastChannel: a member sending a message over the limit loses its link', async () => {
    const channel = `oversize-${channels++}`
    let closedWith!: (close: [number, string]) => void
    const closed = new Promise<[number, string]>(resolve => { closedWith = resolve })
    const receiver = new BroadcastLinks({ channel, selfId: 'a', maxMessageBytes: 1024, onLink: link => { link.onClose = (code, reason) => closedWith([code, reason]) } })
    const sender = new BroadcastLinks({ channel, selfId: 'b', onLink: link => link.send(new Uint8Array(1025)) })
    try {
      expect(await closed).toEqual([1009, 'message too large, or not bytes'])
    } finally {
      sender.close()
      receiver.close()
    }
  })
})
