/**
 * A relay's view of its cluster: who the members are, where each document lives
 * (rendezvous placement: R homes, the relays that keep a copy) and how many homes must commit a client's update
 * before it is acknowledged (W).
 */
import { homesOf, type ClusterMap, type ClusterMember } from '../../shared/placement.js'

/** Cluster settings of a relay. */
export interface ClusterOptions {
  /** This relay's id; must be one of `members`. */
  selfId: string
  /** Every relay of the cluster, this one included. */
  members: ClusterMember[]
  /** Relays that keep a copy of each document (R, flag `--copies`). Default 3, capped at the cluster size. */
  copies?: number
  /** Homes that must commit an update before it is acknowledged (W). Default a majority of R. */
  writeQuorum?: number
  /** Shared secret that relay-to-relay links present. Default none (links are not authenticated). */
  secret?: string
}

/** Parses `r1=ws://127.0.0.1:4321,r2=ws://127.0.0.1:4322` into members. */
export function parseMembers (spec: string): ClusterMember[] {
  return spec.split(',').filter(part => part.trim() !== '').map(part => {
    const at = part.indexOf('=')
    const id = part.slice(0, at).trim()
    const url = part.slice(at + 1).trim()
    if (at <= 0 || !/^wss?:\/\//.test(url)) throw new Error(`expected ID=ws://HOST:PORT in the member list, got ${JSON.stringify(part)}`)
    return { id, url: url.replace(/\/+$/, '') }
  })
}

/** Validated cluster settings with placement helpers. */
export class Cluster {
  readonly selfId: string
  readonly members: ClusterMember[]
  readonly copies: number
  readonly writeQuorum: number
  readonly secret: string

  constructor (options: ClusterOptions) {
    const ids = options.members.map(member => member.id)
    if (new Set(ids).size !== ids.length) throw new Error('relay ids in the member list must be unique')
    if (!ids.includes(options.selfId)) throw new Error(`this relay's id ${JSON.stringify(options.selfId)} is not in the member list (${ids.join(', ')})`)
    this.selfId = options.selfId
    this.members = [...options.members].sort((a, b) => a.id < b.id ? -1 : 1)
    this.copies = Math.min(options.copies ?? 3, this.members.length)
    if (this.copies < 1) throw new Error('--copies must be at least 1')
    this.writeQuorum = options.writeQuorum ?? Math.floor(this.copies / 2) + 1
    if (this.writeQuorum < 1 || this.writeQuorum > this.copies) throw new Error(`--write-quorum must be between 1 and the number of copies (${this.copies})`)
    this.secret = options.secret ?? ''
  }

  /** The map native clients route by. */
  get map (): ClusterMap {
    return { copies: this.copies, members: this.members }
  }

  /** The other members. */
  get others (): ClusterMember[] {
    return this.members.filter(member => member.id !== this.selfId)
  }

  /** The homes of `docId`, in preference order. */
  homesOf (docId: string): ClusterMember[] {
    return homesOf(docId, this.members, this.copies)
  }

  /** Whether this relay is a home of `docId`. */
  isHome (docId: string): boolean {
    return this.homesOf(docId).some(member => member.id === this.selfId)
  }

  /** The homes of `docId` other than this relay. */
  otherHomes (docId: string): ClusterMember[] {
    return this.homesOf(docId).filter(member => member.id !== this.selfId)
  }
}
