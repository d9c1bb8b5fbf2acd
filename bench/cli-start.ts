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
 *
 * With --verify INV, the command timed is `hafw verify INV --json` on a lab that is up (root;
 * HAFW_STATE_DIR as for `hafw lab up INV`), the overhead being its wall time less the span of the
 * pairs' own jobs (the first pair job's "start" to the last one's "done").
 *
 * Measured here 2026-12-07 (2 cores, medians of 15 runs, interleaved with a build of 7f8ff4f,
 * where issue 13 measured 0.8 s on verify), this build against 7f8ff4f:
 *   hafw verify on the lab (inventory/lab.yaml):  overhead 319 ms vs 536 ms (-40%; -43..-45% in
 *     two busier runs); 299 vs 442 ms to the job's start, 15 vs 85 ms from its end to exit;
 *     wall 1415 vs 1742 ms; hafw --version 134 vs 155 ms (node -e 0: 63 ms)
 *   hafw jobs ping:  overhead 278 vs 357 ms
 * What did it: one bundle of the CLI and its dependencies (packages/cli/bin/bundle.js), zod
 * imported as a namespace (582 -> 146 kB in it) and parsing without its JIT, views without
 * Handlebars, no short BLOCK waits on Redis (queue.ts follow()).
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { ensureEmbeddedRedis, JobQueue, readEvents, stopEmbeddedRedis } from '../packages/queue/src/index.js'

const { values } = parseArgs({ options: { runs: { type: 'string', default: '15' }, cli: { type: 'string', default: 'packages/cli/bin/run.js' }, verify: { type: 'string' } } })
const RUNS = Number(values.runs)
const CLIS = values.cli!.split(',').map((c) => resolve(c))
const VERIFY = values.verify && resolve(values.verify)
if (VERIFY && !process.env.HAFW_STATE_DIR) throw new Error('--verify: set HAFW_STATE_DIR to the state directory of the lab that is up')
const dir = VERIFY ? process.env.HAFW_STATE_DIR! : mkdtempSync(join(tmpdir(), 'hafw-bench-start-'))
const env = { ...process.env, HAFW_STATE_DIR: dir, REDIS_URL: '', REDIS_SENTINELS: '', NODE_OPTIONS: '' }
const command = VERIFY ? ['verify', VERIFY, '--json'] : ['jobs', 'ping', '--json']
const label = VERIFY ? 'hafw verify' : 'hafw jobs ping'

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
      const r = await run([cli, ...command])
      if (r.code !== 0) throw new Error(`${cli} ${command.join(' ')}: exit ${r.code}\n${r.err}`)
      // verify logs what it does to stderr; only warnings count there.
      for (const line of (v.err + r.err).split('\n')) if (line.trim() && (!VERIFY || /warn/i.test(line))) warnings.add(`${cli}: ${line}`)
      const jobId = VERIFY ? (await q.list({ limit: 1 }))[0]!.id : (JSON.parse(r.out) as { jobId: string }).jobId
      const { events } = await readEvents(q.redis, q.key('events', jobId), '0-0')
      // The jobs that did the work: the job itself, or a rollout's pair jobs (its children).
      const started = new Set(events.filter((e) => e.kind === 'start').map((e) => e.job))
      if (started.size > 1) started.delete(jobId)
      const at = (kind: string, pick: (...t: number[]) => number) => {
        const ts = events.filter((x) => started.has(x.job) && x.kind === kind).map((x) => x.t)
        if (ts.length !== started.size) throw new Error(`job ${jobId}: ${started.size} job(s) started, ${ts.length} "${kind}" event(s)`)
        return pick(...ts)
      }
      if (i === 0) continue // warm-up: disk cache, and the CLI's bundle if the build is newer
      const f = figs.get(cli)!
      const start = at('start', Math.min)
      const done = at('done', Math.max)
      f.version.push(v.t1 - v.t0)
      f.start.push(start - r.t0)
      f.end.push(r.t1 - done)
      f.overhead.push(start - r.t0 + (r.t1 - done))
      f.wall.push(r.t1 - r.t0)
    }
  }
  console.log(`hafw start+queue overhead, median of ${RUNS} runs (min-max), embedded redis-server ${redis.socket}`)
  console.log(`  node -e 0                            ${fmt(node)}`)
  for (const [cli, f] of figs) {
    console.log(cli)
    console.log(`  hafw --version                       ${fmt(f.version)}`)
    console.log(`  ${label}: start -> job start   ${fmt(f.start)}`)
    console.log(`  ${label}: job done -> exit     ${fmt(f.end)}`)
    console.log(`  ${label}: overhead (sum)       ${fmt(f.overhead)}`)
    console.log(`  ${label}: wall                 ${fmt(f.wall)}`)
  }
  if (warnings.size) console.log(`stderr was not empty:\n  ${[...warnings].join('\n  ')}`)
} finally {
  await q.close()
  if (!VERIFY) {
    // The lab's state (and its Redis) stays as it was.
    await stopEmbeddedRedis(join(dir, 'redis'))
    rmSync(dir, { recursive: true, force: true })
  }
}
