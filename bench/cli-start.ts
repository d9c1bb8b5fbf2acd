/**
 * CLI start+queue overhead: what `hafw` itself adds around a job's work, for the no-op queued
 * command `hafw jobs ping --json` (submit, no worker listening, so the CLI runs the job in
 * process, as `hafw verify` or `hafw apply` do), against a real redis-server (the embedded one,
 * already running, as after the first command of a session).
 *
 *   start:  spawn of the process -> the job's "start" event (its operation is about to run)
 *   end:    the job's "done" event (the operation returned) -> the process has exited
 *
 * Also the floors it cannot go below: `node -e 0` and `hafw --version` (oclif, no command).
 * Prints medians of --runs runs (after one warm-up run), and min-max.
 *
 *   npx tsx bench/cli-start.ts [--runs 15] [--cli packages/cli/bin/run.js,/other/build/bin/run.js]
 *
 * Several --cli builds (comma-separated) run interleaved, to compare them under the same load.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { ensureEmbeddedRedis, JobQueue, readEvents, stopEmbeddedRedis } from '../packages/queue/src/index.js'

const { values } = parseArgs({ options: { runs: { type: 'string', default: '15' }, cli: { type: 'string', default: 'packages/cli/bin/run.js' } } })
const RUNS = Number(values.runs)
const CLIS = values.cli!.split(',').map((c) => resolve(c))
const dir = mkdtempSync(join(tmpdir(), 'hafw-bench-start-'))
const env = { ...process.env, HAFW_STATE_DIR: dir, REDIS_URL: '', REDIS_SENTINELS: '', NODE_OPTIONS: '' }

/** Run a process; wall time from just before spawn to its exit. */
function run(argv: string[]): Promise<{ t0: number; t1: number; code: number | null; out: string; err: string }> {
  return new Promise((res, rej) => {
    const t0 = Date.now()
    const c = spawn(process.execPath, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    c.stdout.on('data', (d) => (out += d))
    c.stderr.on('data', (d) => (err += d))
    c.on('error', rej)
    c.on('close', (code) => res({ t0, t1: Date.now(), code, out, err }))
  })
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2]! : Math.round((s[s.length / 2 - 1]! + s[s.length / 2]!) / 2)
}
const fmt = (xs: number[]) => `${String(median(xs)).padStart(5)} ms  (${Math.min(...xs)}-${Math.max(...xs)})`

const redis = await ensureEmbeddedRedis(join(dir, 'redis'))
const q = await JobQueue.open({ target: { options: { path: redis.socket }, describe: redis.socket } })
interface Figures {
  version: number[]
  start: number[]
  end: number[]
  overhead: number[]
  wall: number[]
}
try {
  const node: number[] = []
  const figs = new Map<string, Figures>(CLIS.map((c) => [c, { version: [], start: [], end: [], overhead: [], wall: [] }]))
  const warnings = new Set<string>()
  // Interleaved, so that the builds compared see the same machine load.
  for (let i = 0; i <= RUNS; i++) {
    const n = await run(['-e', '0'])
    if (i > 0) node.push(n.t1 - n.t0)
    for (const cli of CLIS) {
      const v = await run([cli, '--version'])
      const r = await run([cli, 'jobs', 'ping', '--json'])
      if (r.code !== 0) throw new Error(`${cli} jobs ping: exit ${r.code}\n${r.err}`)
      for (const line of (v.err + r.err).split('\n')) if (line.trim()) warnings.add(`${cli}: ${line}`)
      const { jobId } = JSON.parse(r.out) as { jobId: string }
      const { events } = await readEvents(q.redis, q.key('events', jobId), '0-0')
      const at = (kind: string) => {
        const e = events.find((x) => x.job === jobId && x.kind === kind)
        if (!e) throw new Error(`job ${jobId}: no "${kind}" event`)
        return e.t
      }
      if (i === 0) continue // warm-up: disk cache, and the CLI's manifest if the build is newer
      const f = figs.get(cli)!
      f.version.push(v.t1 - v.t0)
      f.start.push(at('start') - r.t0)
      f.end.push(r.t1 - at('done'))
      f.overhead.push(at('start') - r.t0 + (r.t1 - at('done')))
      f.wall.push(r.t1 - r.t0)
    }
  }
  console.log(`hafw start+queue overhead, median of ${RUNS} runs (min-max), embedded redis-server ${redis.socket}`)
  console.log(`  node -e 0                            ${fmt(node)}`)
  for (const [cli, f] of figs) {
    console.log(cli)
    console.log(`  hafw --version                       ${fmt(f.version)}`)
    console.log(`  hafw jobs ping: start -> job start   ${fmt(f.start)}`)
    console.log(`  hafw jobs ping: job done -> exit     ${fmt(f.end)}`)
    console.log(`  hafw jobs ping: overhead (sum)       ${fmt(f.overhead)}`)
    console.log(`  hafw jobs ping: wall                 ${fmt(f.wall)}`)
  }
  if (warnings.size) console.log(`stderr was not empty:\n  ${[...warnings].join('\n  ')}`)
} finally {
  await q.close()
  await stopEmbeddedRedis(join(dir, 'redis'))
  rmSync(dir, { recursive: true, force: true })
}
