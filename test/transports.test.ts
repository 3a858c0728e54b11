/**
 * Every transport passes the same conformance suite: the in-memory pair, WebSockets on
 * loopback (the listener's server side and the client side), BroadcastChannel links, and
 * RTCDataChannels (node-datachannel's implementation of the WebRTC API).
 */
import { RTCPeerConnection as NodeRtcPeerConnection } from 'node-datachannel/polyfill'
import WebSocket from 'ws'
import { linkPair, type Link } from '../shared/transport/link.js'
import { connectWebSocket, type WebSocketConstructor } from '../shared/transport/websocket.js'
import { BroadcastLinks } from '../shared/transport/broadcast.js'
import { rtcLink, type DataChannel } from '../shared/transport/rtc.js'
import { listen } from '../shared/listen/listener.js'
import { DEFAULT_LIMITS } from '../shared/listen/limits.js'
import { silentLog } from '../shared/listen/log.js'
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
    log: silentLog,
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
  left.onicecandidate = event => { if (event.candidate !== null) void right.addIceCandidate(event.candidate) }
  right.onicecandidate = event => { if (event.candidate !== null) void left.addIceCandidate(event.candidate) }
  const opened = (channel: DataChannel): Promise<Link> => new Promise(resolve => {
    const ready = (): void => resolve(rtcLink(channel, 1024 * 1024))
    if (channel.readyState === 'open') ready()
    else (channel as unknown as { onopen: () => void }).onopen = ready
  })
  const leftChannel = opened(left.createDataChannel('petaldb') as unknown as DataChannel)
  const rightChannel = new Promise<Link>(resolve => { right.ondatachannel = event => resolve(opened(event.channel as unknown as DataChannel)) })
  const offer = await left.createOffer()
  await left.setLocalDescription(offer)
  await right.setRemoteDescription(offer)
  const answer = await right.createAnswer()
  await right.setLocalDescription(answer)
  await left.setRemoteDescription(answer)
  return { pair: [await leftChannel, await rightChannel], teardown: () => { left.close(); right.close() } }
})
