/** A cluster of relay child processes on loopback, each with its own data directory. */
import { join } from 'node:path'
import { freePort, startRelayProcess, type RelayProcess } from './relay-process.js'

export interface ClusterRelay {
  id: string
  port: number
  url: string
  dataDir: string
  process: RelayProcess | null
}

export interface TestCluster {
  relays: ClusterRelay[]
  /** Starts (or restarts) relay `id` with the cluster's current member list. */
  start(id: string): Promise<RelayProcess>
  /** kill -9 of relay `id`. */
  kill(id: string): Promise<void>
  /** Stops every relay (default SIGKILL; SIGTERM commits what is pending first). */
  stopAll(signal?: NodeJS.Signals): Promise<void>
  /** The --members list. */
  peers(): string
  /** Adds a member (not started). */
  add(id: string): Promise<ClusterRelay>
  /** Removes a member from the list (stopping it first). */
  remove(id: string): Promise<void>
}

export interface ClusterSettings {
  replicas?: number
  writeQuorum?: number
  secret?: string
  /** Maps a member's real URL to the URL the other relays use (e.g. through a proxy). */
  peerUrl?: (relay: ClusterRelay, from: ClusterRelay) => string
  extraArgs?: string[]
  /** Called once the members' ports are chosen, before any relay starts. */
  beforeStart?: (relays: ClusterRelay[]) => void | Promise<void>
}

export async function startCluster (root: string, size: number, settings: ClusterSettings = {}): Promise<TestCluster> {
  const relays: ClusterRelay[] = []
  const add = async (id: string): Promise<ClusterRelay> => {
    const port = await freePort()
    const relay = { id, port, url: `ws://127.0.0.1:${port}`, dataDir: join(root, id), process: null }
    relays.push(relay)
    return relay
  }
  for (let i = 1; i <= size; i++) await add(`r${i}`)
  const peersFor = (from: ClusterRelay): string => relays.map(r => `${r.id}=${settings.peerUrl?.(r, from) ?? r.url}`).join(',')
  const byId = (id: string): ClusterRelay => {
    const relay = relays.find(r => r.id === id)
    if (relay === undefined) throw new Error(`no relay ${id}`)
    return relay
  }
  const cluster: TestCluster = {
    relays,
    peers: () => peersFor(relays[0]!),
    add,
    async start (id) {
      const relay = byId(id)
      await relay.process?.stop('SIGKILL')
      relay.process = await startRelayProcess(relay.dataDir, [
        '--id', id, '--members', peersFor(relay), '--cluster-secret', settings.secret ?? 'test-secret',
        ...(settings.replicas === undefined ? [] : ['--copies', String(settings.replicas)]),
        ...(settings.writeQuorum === undefined ? [] : ['--write-quorum', String(settings.writeQuorum)]),
        ...(settings.extraArgs ?? [])
      ], relay.port)
      return relay.process
    },
    async kill (id) {
      const relay = byId(id)
      await relay.process?.stop('SIGKILL')
      relay.process = null
    },
    async stopAll (signal = 'SIGKILL') {
      await Promise.all(relays.map(r => r.process?.stop(signal)))
      for (const r of relays) r.process = null
    },
    async remove (id) {
      await cluster.kill(id)
      relays.splice(relays.indexOf(byId(id)), 1)
    }
  }
  await settings.beforeStart?.(relays)
  await Promise.all(relays.map(r => cluster.start(r.id)))
  return cluster
}
