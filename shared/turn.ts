/** Runs `task` on the next turn of the event loop, after pending I/O callbacks (Node) or as soon as a browser allows. */
export const nextTurn: (task: () => void) => void = typeof setImmediate === 'function' ? task => { setImmediate(task) } : task => { setTimeout(task, 0) }
