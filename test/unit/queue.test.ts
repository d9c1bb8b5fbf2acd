import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createServer } from 'node:net'
import { HafwError, InvalidInputError, type ProgressEvent } from '@hafw/core'
import { startWorker, type JobQueue } from '@hafw/queue'
import { connectOp, exitWith, flaky, record, sleeper, sum } from '../fixtures/queue-ops.js'
import { openQueue, startRedis, until, type PrivateRedis } from '../fixtures/queue-harness.js'

let redis: PrivateRedis
const queues: JobQueue[] = []
const open = async () => {
  const q = await openQueue(redis)
  queues.push(q)
  return q
}

beforeAll(async () => {
  redis = await startRedis()
})
afterAll(async () => {
  for (const q of queues) await q.close()
  await redis?.stop()
})

describe('submit and wait', () => {
  it('runs in this process when no worker listens, streaming progress, with the same record', async () => {
    const q = await open()
    const events: ProgressEvent[] = []
    const r = await q.submitAndWait(sleeper, { ms: 300, pair: 'p1' }, { progress: (e) => events.push(e) })
    expect(r.detached).toBe(false)
    if (r.detached) return
    expect(r.result.slept).toBeGreaterThanOrEqual(300)
    expect(r.result.pid).toBe(process.pid)
    expect(events.some((e) => /no worker is listening/.test(e.message))).toBe(true)
    expect(events.filter((e) => /^slept \d+ ms$/.test(e.message)).length).toBeGreaterThanOrEqual(2)
    expect(events.some((e) => e.fraction === 1 && e.scope === 'p1')).toBe(true)
    const d = await q.show(r.jobId)
    expect(d).toMatchObject({ id: r.jobId, op: 'test.sleep', state: 'completed', pairs: ['p1'], attemptsMade: 1 })
    expect((d.result as { slept: number }).slept).toBe(r.result.slept)
    // The pair lock is released once the job is over.
    expect(await q.locks.holder('p1')).toBeUndefined()
  })

  it('hands the job to a listening worker instead', async () => {
    const q = await open()
    const w = await startWorker(q, { concurrency: 1 })
    try {
      const events: ProgressEvent[] = []
      const r = await q.submitAndWait(sleeper, { ms: 150 }, { progress: (e) => events.push(e) })
      expect(events.some((e) => /no worker is listening/.test(e.message))).toBe(false)
      expect(events.some((e) => e.message.startsWith(`started on ${w.id}`))).toBe(true)
      expect(r.detached).toBe(false)
    } finally {
      await w.close()
    }
  })

  it('detach returns the job id at once and leaves the job queued', async () => {
    const q = await open()
    const r = await q.submitAndWait(sleeper, { ms: 10 }, { detach: true })
    expect(r).toEqual({ jobId: expect.any(String), detached: true })
    expect(await q.queue.getJobState(r.jobId)).toBe('waiting')
    // A later wait runs it (no worker listens).
    expect(await q.wait(r.jobId)).toMatchObject({ slept: expect.any(Number) })
  })

  it('rethrows the job error with its exit code; failed checks are not retried', async () => {
    const q = await open()
    const err = await q.submitAndWait(exitWith, { code: 3 }).catch((e) => e)
    expect(err).toBeInstanceOf(HafwError)
    expect(err.exitCode).toBe(3)
    expect(err.transient).toBe(false)
    expect(err.message).toBe('failed check: exit 3 requested')
    const [job] = await q.list({ op: 'test.exit' })
    expect(job).toMatchObject({ state: 'failed', attemptsMade: 1, attempts: 3 })
  })

  it('invalid input fails at once with its issues (file, line), not retried', async () => {
    const q = await open()
    const dir = mkdtempSync(join(redis.dir, 'sum-'))
    writeFileSync(join(dir, 'ok.txt'), '1\n2\n3.5\n')
    writeFileSync(join(dir, 'bad.txt'), '1\nzwei\n3\n')
    const ok = await q.submitAndWait(sum, { file: join(dir, 'ok.txt') })
    expect(ok.detached === false && ok.result).toEqual({ total: 6.5 })
    const err = await q.submitAndWait(sum, { file: join(dir, 'bad.txt') }).catch((e) => e)
    expect(err).toBeInstanceOf(InvalidInputError)
    expect(err.exitCode).toBe(1)
    expect(err.issues).toEqual([{ file: join(dir, 'bad.txt'), line: 2, column: 1, path: '[1]', message: 'expected a number, found "zwei"' }])
    const failed = (await q.list({ op: 'test.sum', state: 'failed' }))[0]!
    expect(failed.attemptsMade).toBe(1)
  })

  it('retries transient faults with backoff until they pass', async () => {
    const q = await open()
    const dir = mkdtempSync(join(redis.dir, 'flaky-'))
    const events: ProgressEvent[] = []
    const r = await q.submitAndWait(flaky, { id: 'a', dir, failTimes: 2 }, { progress: (e) => events.push(e) })
    expect(r.detached === false && r.result).toEqual({ runs: 3 })
    expect(readFileSync(join(dir, 'a.count'), 'utf8')).toBe('3')
    const retries = events.filter((e) => /attempt \d\/4 failed: simulated transient fault/.test(e.message))
    expect(retries.map((e) => e.message.match(/retrying in (.*)$/)![1])).toEqual(['50 ms', '100 ms'])
    // bullmq counts every finished attempt, the successful one included.
    expect((await q.getJob(r.jobId)).attemptsMade).toBe(3)
  })

  it('gives up after the last attempt and keeps the exit code and transient flag', async () => {
    const q = await open()
    const dir = mkdtempSync(join(redis.dir, 'flaky-'))
    const err = await q.submitAndWait(flaky, { id: 'b', dir, failTimes: 10 }).catch((e) => e)
    expect(err).toBeInstanceOf(HafwError)
    expect(err).toMatchObject({ exitCode: 4, transient: true, message: 'simulated transient fault 4/10' })
    expect(readFileSync(join(dir, 'b.count'), 'utf8')).toBe('4')
  })

  it('retries a real ECONNREFUSED (not a HafwError): fails after its attempts, passes once the port listens', async () => {
    const q = await open()
    const srv = createServer((s) => s.end())
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r))
    const port = (srv.address() as { port: number }).port
    await new Promise<void>((r) => srv.close(() => r()))
    const err = await q.submitAndWait(connectOp, { port }).catch((e) => e)
    expect(err.message).toMatch(/ECONNREFUSED/)
    expect(err.transient).toBe(true)
    expect((await q.list({ op: 'test.connect', state: 'failed' }))[0]!.attemptsMade).toBe(3)
    // Now open the port while the job sits in its first backoff (500 ms).
    const r = await q.submitAndWait(connectOp, { port }, { progress: (e) => void (/attempt 1\/3 failed: .*ECONNREFUSED/.test(e.message) && srv.listen(port, '127.0.0.1')) })
    srv.close()
    expect(r.detached === false && r.result).toEqual({ connected: true })
    expect((await q.getJob(r.jobId)).attemptsMade).toBe(2)
  })

  it('cancels a running job through its AbortSignal', async () => {
    const q = await open()
    const w = await startWorker(q)
    try {
      const { jobId } = (await q.submitAndWait(sleeper, { ms: 20_000, pair: 'c1' }, { detach: true })) as { jobId: string }
      await until(async () => (await q.queue.getJobState(jobId)) === 'active', 5000, 'active')
      const t0 = Date.now()
      await q.cancel(jobId, 'operator said so')
      const err = await q.wait(jobId).catch((e) => e)
      expect(Date.now() - t0).toBeLessThan(3000)
      expect(err).toMatchObject({ exitCode: 130, message: 'cancelled: operator said so' })
      expect(await q.locks.holder('c1')).toBeUndefined()
    } finally {
      await w.close()
    }
  })

  it('a waiting job cancelled before it starts fails as cancelled without running', async () => {
    const q = await open()
    const dir = mkdtempSync(join(redis.dir, 'rec-'))
    const { jobId } = (await q.submitAndWait(record, { pair: 'x', dir, ms: 1, tag: 'never' }, { detach: true })) as { jobId: string }
    await q.cancel(jobId)
    const err = await q.wait(jobId).catch((e) => e)
    expect(err.exitCode).toBe(130)
    expect(() => readFileSync(join(dir, 'x.log'))).toThrow()
  })

  it('refuses secrets in job data and unknown operations before anything is queued', async () => {
    const q = await open()
    await expect(q.submit('test.sleep', { ms: 1, auth_pass: 'hunter2' })).rejects.toThrow(/input.auth_pass: job data must not carry secrets/)
    await expect(q.submit('no.such', {})).rejects.toThrow(/unknown operation "no.such"/)
    expect(await q.list()).toEqual([])
  })
})

describe('rollout', () => {
  const logOf = (dir: string, pair: string) =>
    readFileSync(join(dir, `${pair}.log`), 'utf8')
      .trim()
      .split('\n')
      .map((l) => l.split(' '))
  const interval = (dir: string, pair: string) => {
    const l = logOf(dir, pair)
    return { start: Number(l[0]![2]), end: Number(l[l.length - 1]![2]) }
  }

  it('canary first, then the rest at most `parallel` at a time; result per pair', async () => {
    const q = await open()
    const dir = mkdtempSync(join(redis.dir, 'roll-'))
    const w = await startWorker(q, { concurrency: 4 })
    try {
      const pairs = ['a1', 'a2', 'a3', 'a4', 'a5', 'a6', 'a7']
      const events: ProgressEvent[] = []
      const r = await q.rollout(
        // a3 runs long: the window must refill around it (a6, a7 start while it runs), not wait for it.
        { op: 'test.record', items: pairs.map((pair) => ({ pair, input: { pair, dir, ms: pair === 'a3' ? 1500 : 100, tag: pair } })), canary: 2, parallel: 3 },
        { progress: (e) => events.push(e) },
      )
      if (r.detached) throw new Error('detached')
      expect(r.jobId).toMatch(/^r\d+$/)
      expect(r.result).toMatchObject({ op: 'test.record', ok: true, completed: 7, failed: 0, notStarted: 0 })
      expect(r.result.pairs.map((p) => [p.pair, p.jobId, p.state])).toEqual(pairs.map((p) => [p, `${r.jobId}.${p}`, 'completed']))
      expect((r.result.pairs[0]!.result as { tag: string }).tag).toBe('a1')
      const iv = Object.fromEntries(pairs.map((p) => [p, interval(dir, p)]))
      const canaryEnd = Math.max(iv.a1!.end, iv.a2!.end)
      for (const p of pairs.slice(2)) expect(iv[p]!.start, `${p} started before the canary finished`).toBeGreaterThanOrEqual(canaryEnd)
      // Never more than 3 pairs at once, and the window refills (not waves): a5 starts before a3..a4 all ended.
      const points = pairs.flatMap((p) => [[iv[p]!.start, 1], [iv[p]!.end, -1]] as const).sort((x, y) => x[0] - y[0] || x[1] - y[1])
      let cur = 0
      let max = 0
      for (const [, d] of points) max = Math.max(max, (cur += d))
      expect(max).toBe(3)
      for (const p of ['a6', 'a7']) expect(iv[p]!.start, `${p} starts while a3 still runs`).toBeLessThan(iv.a3!.end)
      // Children's progress reaches the caller through the rollout's stream.
      expect(events.filter((e) => /^recording a\d$/.test(e.message)).map((e) => e.scope).sort()).toEqual(pairs)
      const d = await q.show(r.jobId)
      expect(d.children?.map((c) => c.state)).toEqual(pairs.map(() => 'completed'))
    } finally {
      await w.close()
    }
  })

  it('stops starting pairs after the first failure and fails with that pair\'s exit code', async () => {
    const q = await open()
    const dir = mkdtempSync(join(redis.dir, 'roll-'))
    const items = ['b1', 'b2', 'b3', 'b4', 'b5'].map((pair) => ({ pair, input: { pair, dir, ms: 50, tag: pair, ...(pair === 'b2' ? { fatal: true } : {}) } }))
    // No worker: the CLI's in-process worker runs parent and children.
    const err = await q.rollout({ op: 'test.record', items, canary: 1, parallel: 1 }).catch((e) => e)
    expect(err).toBeInstanceOf(HafwError)
    expect(err.exitCode).toBe(5)
    expect(err.message.split('\n')).toEqual([
      expect.stringMatching(/^rollout r\d+ stopped: pair b2 failed \(1 completed, 1 failed, 3 not started\)$/),
      '  b2: failed: b2: health check failed on b2',
      '  b3: not started',
      '  b4: not started',
      '  b5: not started',
    ])
    expect(err.details).toMatchObject({ ok: false, completed: 1, failed: 1, notStarted: 3 })
    expect(['b1', 'b2'].map((p) => logOf(dir, p).length)).toEqual([2, 2])
    expect(['b3', 'b4', 'b5'].some((p) => { try { return logOf(dir, p).length > 0 } catch { return false } })).toBe(false)
  })

  it('cancelling a rollout aborts its running pairs and starts no more', async () => {
    const q = await open()
    const w = await startWorker(q, { concurrency: 3 })
    try {
      const items = ['c1', 'c2', 'c3', 'c4'].map((pair) => ({ pair, input: { ms: 10_000, pair } }))
      const r = await q.rollout({ op: 'test.sleep', items, parallel: 2 }, { detach: true })
      await until(async () => (await q.list({ op: 'test.sleep', state: 'active' })).length === 2, 5000, 'two pairs running')
      const c = await q.cancel(r.jobId)
      expect(c.children.sort()).toEqual([`${r.jobId}.c1`, `${r.jobId}.c2`])
      const err = await q.wait(r.jobId).catch((e) => e)
      expect(err.exitCode).toBe(130)
      expect(err.message).toMatch(/^rollout r\d+ cancelled/)
      expect(err.details).toMatchObject({ cancelled: true, completed: 0, failed: 2, notStarted: 2 })
    } finally {
      await w.close()
    }
  })
})

describe('pair locks', () => {
  it('a job longer than the lock TTL keeps its pair (renewal); the next job on the pair waits for it', async () => {
    const q = await open()
    const dir = mkdtempSync(join(redis.dir, 'long-'))
    const w = await startWorker(q, { concurrency: 2 })
    try {
      // 3x the 1.5 s TTL.
      const long = await q.submit(record, { pair: 'L', dir, ms: 4500, tag: 'long' })
      await until(async () => (await q.queue.getJobState(long)) === 'active', 5000, 'active')
      const next = await q.submit(record, { pair: 'L', dir, ms: 10, tag: 'next' })
      await until(async () => (await q.show(next)).heldBy?.L?.startsWith(`job ${long} on ${w.id}`), 5000, 'next to report the holder')
      const events: ProgressEvent[] = []
      await q.wait(next, { progress: (e) => events.push(e) })
      const lines = readFileSync(join(dir, 'L.log'), 'utf8').trim().split('\n').map((l) => l.split(' ').slice(0, 2).join(' '))
      expect(lines).toEqual(['start long', 'end long', 'start next', 'end next'])
      expect(events.filter((e) => e.message.startsWith('waiting for pair L: held by job')).length).toBe(1)
    } finally {
      await w.close()
    }
  })

  it('a job whose lock is taken away stops (aborted, transient) and runs again', async () => {
    const q = await open()
    const w = await startWorker(q)
    try {
      const id = await q.submit(record, { pair: 'S', dir: mkdtempSync(join(redis.dir, 'steal-')), ms: 3000, tag: 'victim' })
      await until(async () => (await q.locks.holder('S'))?.startsWith(`job ${id}`), 5000, 'lock taken')
      // As if the key had expired while the holder was frozen: another holder appears.
      await q.redis.set(`${q.prefix}:lock:S`, 'x intruder', 'PX', 1000)
      const events: ProgressEvent[] = []
      await q.wait(id, { progress: (e) => events.push(e) })
      expect(events.some((e) => /attempt 1\/3 failed: lost the lock on S \(expired while running\)/.test(e.message))).toBe(true)
      expect((await q.getJob(id)).attemptsMade).toBe(2)
    } finally {
      await w.close()
    }
  })

  it('takes all pairs of a job or none', async () => {
    const q = await open()
    const lost: string[] = []
    const ab = await q.locks.tryAcquire(['A', 'B'], 'one', (w) => lost.push(w))
    expect(ab.ok).toBe(true)
    expect(await q.locks.tryAcquire(['B', 'C'], 'two', () => {})).toEqual({ ok: false, pair: 'B', holder: 'one' })
    expect(await q.locks.holder('C')).toBeUndefined()
    if (ab.ok) await ab.lock.release()
    const bc = await q.locks.tryAcquire(['B', 'C'], 'two', () => {})
    expect(bc.ok && bc.lock.pairs).toEqual(['B', 'C'])
    if (bc.ok) await bc.lock.release()
    expect(lost).toEqual([])
  })
})
