/** A cluster of relay child processes on loopback, each with its own data directory. */
import { join } from 'node:path'
import { relayGroup, startRelayProcess, type GroupRelay, type RelayGroup } from './relay-process.js'

export interface ClusterRelay extends GroupRelay {
  dataDir: string
}

/** The members (`start` passes the current member list, so a restart sees members added or removed since). */
export interface TestCluster extends RelayGroup<ClusterRelay> {
  /** The --members list. */
  members(): string
}

export interface ClusterSettings {
  copies?: number
  writeQuorum?: number
  secret?: string
  /** Maps a member's real URL to the URL the other relays use (e.g. through a proxy). */
  peerUrl?: (relay: ClusterRelay, from: ClusterRelay) => string
  extraArgs?: string[]
  /** Called once the members' ports are chosen, before any relay starts. */
  beforeStart?: (relays: ClusterRelay[]) => void | Promise<void>
}

export async function startCluster (root: string, size: number, settings: ClusterSettings = {}): Promise<TestCluster> {
  const peersFor = (from: ClusterRelay): string => group.relays.map(r => `${r.id}=${settings.peerUrl?.(r, from) ?? r.url}`).join(',')
  const group = relayGroup<ClusterRelay>(
    (id, port) => ({ id, port, url: `ws://127.0.0.1:${port}`, dataDir: join(root, id), process: null }),
    relay => startRelayProcess(relay.dataDir, [
      '--id', relay.id, '--members', peersFor(relay), '--cluster-secret', settings.secret ?? 'test-secret',
      ...(settings.copies === undefined ? [] : ['--copies', String(settings.copies)]),
      ...(settings.writeQuorum === undefined ? [] : ['--write-quorum', String(settings.writeQuorum)]),
      ...(settings.extraArgs ?? [])
    ], relay.port)
  )
  for (let i = 1; i <= size; i++) await group.add(`r${i}`)
  const cluster: TestCluster = { ...group, members: () => peersFor(group.relays[0]!) }
  await settings.beforeStart?.(group.relays)
  await Promise.all(group.relays.map(r => cluster.start(r.id)))
  return cluster
}
