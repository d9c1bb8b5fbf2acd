/** The queue commands, run as the operator runs them (node packages/cli/bin/run.js, built). */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { JobQueue, stopEmbeddedRedis } from '@hafw/queue'
import { until } from '../fixtures/queue-harness.js'

const root = join(import.meta.dirname, '../..')
const state = mkdtempSync(join(tmpdir(), 'hafw-cli-'))
const env = { ...process.env, HAFW_STATE_DIR: state, REDIS_URL: '', REDIS_SENTINELS: '' }

const children = new Set<ChildProcess>()
function hafw(args: string[], opts: { onSpawn?: (pid: number) => void } = {}): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [join(root, 'packages/cli/bin/run.js'), ...args], { env, cwd: root })
    children.add(c)
    c.on('exit', () => children.delete(c))
    let out = ''
    let err = ''
    c.stdout.on('data', (d) => (out += d))
    c.stderr.on('data', (d) => (err += d))
    opts.onSpawn?.(c.pid!)
    c.on('close', (code) => resolve({ code, out, err }))
  })
}
const json = async (args: string[]) => {
  const r = await hafw([...args, '--json'])
  expect(r.code, r.err).toBe(0)
  return JSON.parse(r.out)
}

beforeAll(() => {
  if (!existsSync(join(root, 'packages/cli/dist/commands/jobs/list.js'))) throw new Error('build first: npx tsc -b packages/cli')
})
/** The queue the CLI uses (same socket, default prefix and name), to watch job states closely. */
const cliQueue = () => JobQueue.open({ target: { options: { path: join(state, 'redis/redis.sock') }, describe: 'test' } })
const stateOf = async (id: string) => {
  const q = await cliQueue()
  try {
    return await q.queue.getJobState(id)
  } finally {
    await q.close()
  }
}

afterAll(async () => {
  for (const c of children) c.kill('SIGKILL')
  await stopEmbeddedRedis(join(state, 'redis'))
  rmSync(state, { recursive: true, force: true })
})

describe('hafw queue commands', () => {
  it('start the embedded redis-server on first use, reuse it, and `redis stop` stops it', async () => {
    const a = await json(['jobs', 'ping'])
    expect(a).toMatchObject({ jobId: '1', heldMs: expect.any(Number) })
    const s1 = await json(['redis', 'status'])
    expect(s1).toMatchObject({ using: 'embedded', embedded: { running: true, answers: true, socket: join(state, 'redis/redis.sock') } })
    await json(['jobs', 'ping'])
    expect((await json(['redis', 'status'])).embedded.pid).toBe(s1.embedded.pid)
    const stop = await json(['redis', 'stop'])
    expect(stop).toEqual({ stopped: true, pid: s1.embedded.pid, dir: join(state, 'redis') })
    expect((await json(['redis', 'status'])).embedded).toMatchObject({ running: false, answers: false })
    // Started again on demand, with the history kept in the AOF.
    expect((await json(['jobs', 'list'])).jobs.map((j: { id: string }) => j.id)).toEqual(['2', '1'])
  })

  it('`hafw worker` takes jobs, `jobs ping --detach` prints only the id, SIGTERM stops it cleanly', async () => {
    let workerPid = 0
    const worker = hafw(['worker', '--concurrency', '2', '--grace', '10'], { onSpawn: (pid) => (workerPid = pid) })
    await until(async () => (await json(['jobs', 'ping'])).pid === workerPid, 20_000, 'the worker to answer pings')
    const d = await hafw(['jobs', 'ping', '--detach', '--hold-ms', '3000'])
    expect(d.code).toBe(0)
    expect(d.out).toMatch(/^\d+\n$/)
    const id = d.out.trim()
    await until(async () => (await stateOf(id)) === 'active', 10_000, 'active')
    process.kill(workerPid, 'SIGTERM')
    const w = await worker
    expect(w.code, w.err).toBe(0)
    expect(w.err).toMatch(/SIGTERM: stopping; 1 running job\(s\) get 10 s to finish/)
    expect(await json(['jobs', 'show', id])).toMatchObject({ id, op: 'queue.ping', state: 'completed', result: { pid: workerPid } })
    const logs = await hafw(['jobs', 'logs', id])
    expect(logs.out).toMatch(new RegExp(`job ${id} started on \\S+:${workerPid}:\\S+ \\(attempt 1/1\\)\\n.*job ${id} pong from .*\\n.*job ${id} completed\\n$`))
  }, 40_000)

  it('cancel, retry, exit codes, and Ctrl-C of a waiting command', async () => {
    const id = (await hafw(['jobs', 'ping', '--detach', '--hold-ms', '100'])).out.trim()
    expect((await json(['jobs', 'cancel', id, '--reason', 'not today'])).state).toBe('waiting')
    const listed = (await json(['jobs', 'list', '--state', 'waiting'])).jobs
    expect(listed).toEqual([expect.objectContaining({ id, state: 'waiting' })])
    expect(await json(['jobs', 'show', id])).toMatchObject({ state: 'waiting', cancelRequested: true })
    const removed = await hafw(['jobs', 'cancel', id, '--remove'])
    expect([removed.code, removed.out]).toEqual([0, `job ${id} (waiting) removed\n`])
    expect((await hafw(['jobs', 'show', id])).code).toBe(2)
    // A job command with Ctrl-C: the job is cancelled and the command exits 130.
    let pid = 0
    const ping = hafw(['jobs', 'ping', '--hold-ms', '20000'], { onSpawn: (p) => (pid = p) })
    const running = await until(async () => (await json(['jobs', 'list', '--state', 'active'])).jobs[0], 20_000, 'ping to run')
    process.kill(pid, 'SIGINT')
    const p = await ping
    expect(p.code).toBe(130)
    expect(p.err).toMatch(/error: cancelled: interrupted/)
    expect(await json(['jobs', 'show', running.id])).toMatchObject({ state: 'failed', failure: { exitCode: 130, message: 'cancelled: interrupted' } })
    const again = await json(['jobs', 'retry', running.id])
    expect(again).toEqual({ jobId: running.id })
    expect((await json(['jobs', 'show', running.id])).state).toBe('waiting')
    const gone = await hafw(['jobs', 'show', 'nope'])
    expect([gone.code, gone.err]).toEqual([2, 'error: no job nope in queue hafw:jobs\n'])
    const done = await hafw(['jobs', 'cancel', '1'])
    expect([done.code, done.err]).toEqual([2, 'error: job 1 already completed\n'])
  }, 60_000)

  it('schedule add/list/remove', async () => {
    const inv = join(state, 'inv.yaml')
    writeFileSync(inv, 'sites: []\n')
    const s = await json(['schedule', 'add', 'verify', inv, '--pair', 'edge1', '--cron', '*/15 * * * *', '--set', 'grace=5', '--set', 'mode=full'])
    expect(s).toMatchObject({ id: 'verify-edge1', op: 'verify', cron: '*/15 * * * *', pairs: ['edge1'], input: { file: inv, pair: 'edge1', grace: 5, mode: 'full' }, next: expect.any(String) })
    expect(Date.parse(s.next) - Date.now()).toBeLessThanOrEqual(15 * 60_000)
    expect((await json(['schedule', 'list'])).schedules.map((x: { id: string }) => x.id)).toEqual(['verify-edge1'])
    const bad = await hafw(['schedule', 'add', 'drill', inv, '--pair', 'edge1', '--cron', 'every day'])
    expect(bad.code).toBe(1)
    expect(bad.err).toMatch(/^error: --cron "every day": /)
    const nofile = await hafw(['schedule', 'add', 'plan', join(state, 'missing.yaml'), '--pair', 'edge1', '--cron', '0 * * * *'])
    expect([nofile.code, nofile.err]).toEqual([1, `error: ${join(state, 'missing.yaml')}: no such file\n`])
    expect(await json(['schedule', 'remove', 'verify-edge1'])).toEqual({ removed: 'verify-edge1' })
    expect((await json(['schedule', 'list'])).schedules).toEqual([])
  })
})
