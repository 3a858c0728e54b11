// Preloaded into every server under benchmark (with --expose-gc): on SIGUSR2 it runs a
// full garbage collection and prints the live memory as one JSON line, so that memory per
// document is measured on live objects, not on how far V8 happened to grow its heap.
process.on('SIGUSR2', () => {
  globalThis.gc()
  const { heapUsed, external, rss } = process.memoryUsage()
  process.stdout.write(`${JSON.stringify({ probe: 'memory', heapUsed, external, rss })}\n`)
})
