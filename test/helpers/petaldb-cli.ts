/** Runs a `petaldb` command of the built CLI to its exit, as a user runs it from a script. */
import { spawnCli } from './relay-process.js'

/** What a command did: its exit code, its output, and the JSON lines it printed on stdout. */
export interface CliRun {
  code: number | null
  stdout: string
  stderr: string
  events: Array<Record<string, unknown>>
}

/** Runs `petaldb ...args`; rejects if it has not exited within `timeoutMs`. */
export function runCli (args: string[], { env = process.env, timeoutMs = 20_000 }: { env?: NodeJS.ProcessEnv, timeoutMs?: number } = {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawnCli(args, { env })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', chunk => { stdout += String(chunk) })
    child.stderr.on('data', chunk => { stderr += String(chunk) })
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`petaldb ${args.join(' ')} did not exit within ${timeoutMs} ms`)) }, timeoutMs)
    child.once('close', code => {
      clearTimeout(timer)
      const events = stdout.split('\n').filter(line => line.startsWith('{')).map(line => JSON.parse(line) as Record<string, unknown>)
      resolve({ code, stdout, stderr, events })
    })
  })
}

/** The summary line of a run (`{"event":"done",...}`). */
export function summaryOf (run: CliRun): Record<string, unknown> {
  const done = run.events.filter(event => event.event === 'done')
  if (done.length !== 1) throw new Error(`expected one summary line, got: ${run.stdout}${run.stderr}`)
  return done[0]!
}
