import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mkdtempSync, readFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { registerOperation, type JobQueue } from '@hafw/queue'
import { checkFencedLog, closeFencedClients, fencedRecord, readFencedLog, record, sleeper } from '../fixtures/queue-ops.js'
import { openQueue, spawnWorker, startRedis, uniq, until, type PrivateRedis, type WorkerProcess } from '../fixtures/queue-harness.js'

let redis: PrivateRedis
const queues: JobQueue[] = []
const procs: WorkerProcess[] = []
const open = async () => {
  const q = await openQueue(redis)
  queues.push(q)
  return q
}
const spawn = async (q: JobQueue, opts: { concurrency?: number; graceMs?: number } = {}) => {
  const w = await spawnWorker(q, redis, opts)
  procs.push(w)
  return w
}

beforeAll(async () => {
  redis = await startRedis()
})
afterAll(async () => {
  for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.kill('SIGKILL')
  await Promise.all(procs.map((p) => p.exited))
  for (const q of queues) await q.close()
  await closeFencedClients()
  await redis?.stop()
})

async function settle(q: JobQueue, ids: string[], timeoutMs = 60_000) {
  return until(async () => {
    const states = await Promise.all(ids.map((id) => q.queue.getJobState(id)))
    return states.every((s) => s === 'completed' || s === 'failed') && states
  }, timeoutMs, 'jobs to finish')
}

describe('workers in separate processes', () => {
  it('1,000 mixed jobs on 3 pairs through 3 workers: each pair held by one run at a time, fencing tokens rising', async () => {
    const q = await open()
    const key = uniq('fenced')
    const workers = await Promise.all([spawn(q, { concurrency: 2 }), spawn(q, { concurrency: 2 }), spawn(q, { concurrency: 2 })])
    const pairs = ['p1', 'p2', 'p3']
    const ids: string[] = []
    const kinds: Record<string, string> = {}
    for (let i = 0; i < 1000; i++) {
      const pair = pairs[i % 3]!
      // Mixed: runs of varied length, transient faults retried, failed checks.
      const kind = i % 50 === 3 ? 'flaky' : i % 50 === 7 ? 'fatal' : 'ok'
      const id = await q.submit(fencedRecord, { pair, socket: redis.socket, key, ms: (i * 37) % 20, tag: `j${i}`, ...(kind === 'flaky' ? { failTimes: 1 } : {}), ...(kind === 'fatal' ? { fatal: true } : {}) })
      ids.push(id)
      kinds[id] = kind
    }
    const t0 = Date.now()
    const states = await settle(q, ids, 240_000)
    const settledMs = Date.now() - t0
    ids.forEach((id, i) => expect([id, states[i]]).toEqual([id, kinds[id] === 'fatal' ? 'failed' : 'completed']))

    const pids = new Set<number>()
    const summary: Record<string, { runs: number; cut: number; refused: number }> = {}
    for (const pair of pairs) {
      const log = await readFencedLog(redis.socket, `${key}:${pair}`)
      // the resource's own order and clock: no two runs of a pair overlap, tokens never go down
      const r = checkFencedLog(log.lines, pair)
      r.runs.forEach((x) => pids.add(x.pid))
      const tags = new Set(r.runs.map((x) => x.tag))
      // every job ran to its end at least once (a flaky one twice; one whose lease ran out may run again)
      for (let i = pairs.indexOf(pair); i < 1000; i += 3) expect(tags.has(`j${i}`), `j${i} on ${pair}`).toBe(true)
      // each run took the pair anew: its token is larger than the previous run's
      for (let k = 1; k < r.runs.length; k++) expect(r.runs[k]!.fence).toBeGreaterThan(r.runs[k - 1]!.fence)
      summary[pair] = { runs: r.runs.length, cut: r.cut.length, refused: log.refused.length }
      // a run cut short by the fence is a job that lost its lease: it must have been retried
      for (const c of r.cut) expect(tags.has(c.tag), `${c.tag} was fenced out and ran again`).toBe(true)
    }
    console.log(`1,000 jobs settled in ${settledMs} ms; fenced runs per pair`, summary)
    expect(pids.size, 'jobs spread over the worker processes').toBeGreaterThanOrEqual(2)
    for (const p of pairs) expect(await q.locks.holder(p)).toBeUndefined()
    for (const w of workers) w.kill('SIGTERM')
    expect(await Promise.all(workers.map((w) => w.exited))).toEqual([0, 0, 0])
    expect(await q.workers()).toEqual([])
  }, 300_000)

  it('a holder stalled past its lease (SIGSTOP) is fenced out: the newer holder\'s writes stand, the stale one\'s are refused', async () => {
    const q = await open()
    const key = uniq('stall')
    const a = await spawn(q)
    const first = await q.submit(fencedRecord, { pair: 's1', socket: redis.socket, key, ms: 1500, tag: 'first' })
    const started = await until(async () => (await readFencedLog(redis.socket, `${key}:s1`)).lines[0], 10_000, 'first to start')
    expect(started).toMatchObject({ kind: 'start', tag: 'first', pid: a.pid })
    a.kill('SIGSTOP')
    try {
      // the lease runs out while its holder sleeps; another worker takes the pair with a larger token
      await until(async () => (await q.locks.holder('s1')) === undefined, 10_000, 'the stalled lease to expire')
      const b = await spawn(q)
      const second = await q.submit(fencedRecord, { pair: 's1', socket: redis.socket, key, ms: 50, tag: 'second' })
      await until(async () => (await q.queue.getJobState(second)) === 'completed', 20_000, 'second to complete')
      const mid = checkFencedLog((await readFencedLog(redis.socket, `${key}:s1`)).lines, 's1')
      expect(mid.runs.find((r) => r.tag === 'second')).toMatchObject({ pid: b.pid })
      expect(mid.runs.find((r) => r.tag === 'second')!.fence).toBeGreaterThan(started.fence)
    } finally {
      a.kill('SIGCONT')
    }
    // The stalled run wakes up believing it holds s1: its end is refused, its job runs again.
    await settle(q, [first], 30_000)
    expect(await q.queue.getJobState(first)).toBe('completed')
    const log = await readFencedLog(redis.socket, `${key}:s1`)
    expect(log.refused).toContain(`end first ${a.pid} ${started.fence}`)
    const r = checkFencedLog(log.lines, 's1')
    expect(r.cut).toEqual([started])
    expect(r.runs.map((x) => x.tag).sort()).toEqual(['first', 'second'])
  }, 60_000)

  it('kill -9 of a worker mid-job: the job is retried elsewhere, the pair lock frees, the next job on the pair runs', async () => {
    const q = await open()
    const dir = mkdtempSync(join(redis.dir, 'kill-'))
    const a = await spawn(q)
    const b = await spawn(q)
    const first = await q.submit(record, { pair: 'k1', dir, ms: 2500, tag: 'first' })
    const running = await until(async () => {
      const log = existsSync(join(dir, 'k1.log')) ? readFileSync(join(dir, 'k1.log'), 'utf8') : ''
      return /^start first \S+ (\d+)$/m.exec(log)?.[1]
    }, 10_000, 'first job to start')
    const victim = [a, b].find((w) => w.pid === Number(running))!
    const survivor = victim === a ? b : a
    const killedAt = Date.now()
    victim.kill('SIGKILL')
    const second = await q.submit(record, { pair: 'k1', dir, ms: 10, tag: 'second' })
    await settle(q, [first, second], 30_000)
    expect(await q.queue.getJobState(first)).toBe('completed')
    expect(await q.queue.getJobState(second)).toBe('completed')
    const r = readFileSync(join(dir, 'k1.log'), 'utf8').trim().split('\n')
    // The killed run wrote its start only; then the retried run and the second job ran on the
    // survivor, one after the other (in either order: whichever got the pair first).
    expect(r[0]).toMatch(new RegExp(`^start first \\S+ ${victim.pid}$`))
    const rest = r.slice(1).map((l) => l.split(' '))
    const seen = rest.map(([k, tag, , pid]) => [k, tag, Number(pid)])
    expect(seen).toHaveLength(4)
    expect([seen[0]![1], seen[2]![1]].sort()).toEqual(['first', 'second'])
    for (const i of [0, 2]) expect([seen[i], seen[i + 1]]).toEqual([['start', seen[i]![1], survivor.pid], ['end', seen[i]![1], survivor.pid]])
    // Recovery is bounded by the job lock + stalled interval (1.5 s + 0.5 s here) and the pair lock TTL.
    const startOf = (tag: string) => Number(rest.find(([k, t]) => k === 'start' && t === tag)![2])
    // Either the retried job or the second one is the first to use the pair again.
    const recovery = { pairReusedMs: Math.round(Math.min(startOf('first'), startOf('second')) - killedAt), killedJobRetriedMs: Math.round(startOf('first') - killedAt) }
    console.log('kill -9 recovery', recovery)
    expect(recovery.pairReusedMs).toBeLessThan(6000)
    expect(recovery.killedJobRetriedMs).toBeLessThan(6000 + 2500)
    const events = await q.logs(first)
    expect(events.filter((e) => e.kind === 'start').map((e) => e.message.split(' ')[2]!.split(':')[1])).toEqual([String(victim.pid), String(survivor.pid)])
  }, 40_000)

  it('a worker that lacks an operation leaves its jobs to one that has it (here: this process)', async () => {
    const q = await open()
    // Registered only in this process, not in the worker processes (as during a rolling upgrade).
    const local = registerOperation('test.local', async (i: { n: number }) => ({ doubled: i.n * 2, pid: process.pid }), { pairOf: () => [] })
    await spawn(q)
    const detached = await q.submit(local, { n: 1 })
    await until(async () => (await q.logs(detached)).some((e) => /operation "test.local" is not registered on worker .*: left to another worker/.test(e.message)), 10_000, 'the worker to hand it back')
    // The event is written before the job is moved back (and the job comes round again every
    // lockWaitMs): wait for the state rather than reading it once.
    await until(async () => (await q.queue.getJobState(detached)) === 'delayed', 10_000, 'the job to be handed back (delayed)')
    // A CLI that knows it (no capable worker listens) runs it itself.
    expect(await q.wait(detached)).toEqual({ doubled: 2, pid: process.pid })
    const r = await q.submitAndWait(local, { n: 21 })
    expect(r.detached === false && r.result).toEqual({ doubled: 42, pid: process.pid })
  })

  it('SIGTERM: a running job finishes before the worker exits', async () => {
    const q = await open()
    const w = await spawn(q, { graceMs: 10_000 })
    const id = await q.submit(sleeper, { ms: 1000, pair: 'g1' })
    await until(async () => (await q.queue.getJobState(id)) === 'active', 5000, 'active')
    w.kill('SIGTERM')
    expect(await w.exited).toBe(0)
    expect(await q.queue.getJobState(id)).toBe('completed')
    expect(w.stderr()).toMatch(/SIGTERM: stopping; 1 running job\(s\) get 10 s to finish/)
  })

  it('SIGTERM past the grace period: the job is aborted and handed back, another worker completes it', async () => {
    const q = await open()
    const w = await spawn(q, { graceMs: 300 })
    const id = await q.submit(sleeper, { ms: 1500, pair: 'g2' })
    await until(async () => (await q.queue.getJobState(id)) === 'active', 5000, 'active')
    w.kill('SIGTERM')
    expect(await w.exited).toBe(0)
    expect(['waiting', 'delayed']).toContain(await q.queue.getJobState(id))
    await spawn(q)
    await settle(q, [id])
    const job = await q.getJob(id)
    expect(await q.queue.getJobState(id)).toBe('completed')
    // Handing back is not a failed attempt.
    expect(job.attemptsMade).toBe(1)
    expect((await q.logs(id)).some((e) => e.kind === 'requeue')).toBe(true)
  })
})
