/**
 * Placement of documents on relays by rendezvous (highest-random-weight) hashing: every
 * relay gets a score for a document, and the relays sorted by descending score are the
 * document's preference list; the first R are its homes, the relays that keep a copy. Adding or removing a relay
 * moves only the documents whose top R change. Isomorphic: clients compute the same lists.
 */

import { hash53 } from './hash.js'

/** A relay of a cluster: its stable id and the URL clients and relays use to reach it. */
export interface ClusterMember {
  id: string
  url: string
}

/** What a relay tells native clients about its cluster. */
export interface ClusterMap {
  /** Relays that keep a copy of each document (R). */
  copies: number
  members: ClusterMember[]
}

/** All members ordered by preference for `docId` (ties broken by id). */
export function preferenceList<M extends { id: string }> (docId: string, members: readonly M[]): M[] {
  return members
    .map(member => ({ member, score: hash53(`${member.id}\u0000${docId}`) }))
    .sort((a, b) => b.score - a.score || (a.member.id < b.member.id ? -1 : 1))
    .map(entry => entry.member)
}

/** The homes of `docId`: the first `copies` members of its preference list. */
export function homesOf<M extends { id: string }> (docId: string, members: readonly M[], copies: number): M[] {
  return preferenceList(docId, members).slice(0, Math.min(copies, members.length))
}
