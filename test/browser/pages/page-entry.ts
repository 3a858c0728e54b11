/** The bundle loaded by the browser test page: PetalDB's browser build, exposed on `window`. */
import * as Y from 'yjs'
import { Replica } from '../../../client/index.js'
import { IndexedDbStore } from '../../../client/browser.js'
import { answerPings, ping } from './ping-pong.js'

Object.assign(globalThis, { petal: { Replica, IndexedDbStore, Y, answerPings, ping } })
