import { DelayedError, UnrecoverableError, WaitingChildrenError, Worker, type Job } from 'bullmq'
import { setMaxListeners } from 'node:events'
import { hostname } from 'node:os'
import { randomBytes } from 'node:crypto'
import { HafwError, type Progress } from '@hafw/core'
import { loadAllOperations, loadOperation, operationNames, pairsFor, ROLLOUT } from './registry.js'
import { cancelledError, isTransient, serializeError } from './errors.js'
import { EventWriter, type JobEvent } from './events.js'
import type { JobData, JobQueue, WorkerInfo } from './queue.js'
import { processRollout, wakeRollout } from './rollout.js'

export interface WorkerOptions {
  /** Jobs run at once by this worker (default 1). */
  concurrency?: number
  /** Announce this worker so CLIs leave jobs to it (false for a CLI's own in-process worker). */
  heartbeat?: boolean
  /** Stop taking jobs once this job has finished (a CLI running its own job). */
  untilJob?: string
  /** Lifecycle lines (job started, done, failed...) and, at debug level, operations' events. */
  log?: Progress
}

export interface HafwWorker {
  id: string
  worker: Worker
  /** Jobs running now. */
  running(): number
  /**
   * Stop taking jobs, let running ones finish for up to graceMs, then abort them: an aborted
   * job goes back to the queue (not counted as an attempt) for another worker. Closes connections.
   */
  close(opts?: { graceMs?: number }): Promise<void>
  /** Abort running jobs now (they go back to the queue); close() still has to be awaited. */
  abortRunning(): void
}

/** How long a job for an operation this worker lacks is left for others before it fails. */
const UNKNOWN_OP_PATIENCE_MS = 10 * 60_000

/** Abort reason used for shutdown: the job is handed back, not failed. */
class Shutdown extends Error {
  constructor() {
    super('worker shutting down')
  }
}

export async function startWorker(q: JobQueue, opts: WorkerOptions = {}): Promise<HafwWorker> {
  // A worker that announces itself is picked for its operations: have their code loaded (and any
  // import error shown) before it takes a job; a CLI's own worker loads only what its job needs.
  if (opts.heartbeat !== false) await loadAllOperations()
  const id = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`
  const t = q.timings
  const concurrency = Math.max(1, opts.concurrency ?? 1)
  const shutdown = new AbortController()
  // one listener per running job
  setMaxListeners(0, shutdown.signal)
  const log = opts.log
  const echo = log ? (e: JobEvent) => log({ ...e, level: e.kind === 'op' && e.level === 'info' ? 'debug' : e.level, scope: `job ${e.job}${e.scope ? ` ${e.scope}` : ''}` }) : undefined
  let active = 0

  const runOne = async (job: Job<JobData>, token: string, signal: AbortSignal | undefined): Promise<unknown> => {
    const root = job.data.root ?? job.id!
    const events = new EventWriter(q.redis, q.key('events', root), job.id!, t.eventsTtlS, echo)
    const scope = job.data.root ? (job.data.pairs[0] ?? '') : ''
    const fail = async (e: unknown): Promise<never> => {
      const final = !isTransient(e) || job.attemptsMade + 1 >= (job.opts.attempts ?? 1)
      const info = serializeError(e)
      await q.redis.hset(q.jobKey(job.id!), 'hafwError', JSON.stringify(info))
      if (final) events.emit('fail', 'error', `failed: ${info.message}`, scope)
      else {
        // bullmq's exponential backoff: delay * 2^(attempts made before this one).
        const ms = ((job.opts.backoff as { delay?: number } | undefined)?.delay ?? 0) * 2 ** job.attemptsMade
        events.emit('retry', 'warn', `attempt ${job.attemptsMade + 1}/${job.opts.attempts} failed: ${info.message}; retrying in ${ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`}`, scope)
      }
      await events.flush()
      // bullmq retries a job only if the error is not an UnrecoverableError.
      throw final ? new UnrecoverableError(info.message) : e
    }

    if (job.name === ROLLOUT) return processRollout(q, job, token, events, fail)
    let op: Awaited<ReturnType<typeof loadOperation>>
    try {
      op = await loadOperation(job.name)
    } catch (e) {
      return fail(e)
    }
    if (!op) {
      const msg = `operation "${job.name}" is not registered on worker ${id} (it knows: ${operationNames().join(', ') || 'none'})`
      // Mixed fleets (a rolling upgrade): leave the job to a worker or CLI that knows it, for a while.
      if (Date.now() - job.timestamp > UNKNOWN_OP_PATIENCE_MS) return fail(new HafwError(`${msg}, and none took it for ${UNKNOWN_OP_PATIENCE_MS / 60_000} min`))
      if ((await q.redis.set(q.key('notice', `unknown-op:${job.id}`), '1', 'EX', 3600, 'NX')) === 'OK') events.emit('wait', 'warn', `${msg}: left to another worker`)
      await events.flush()
      await job.moveToDelayed(Date.now() + Math.round(t.lockWaitMs * (1 + Math.random())), token)
      throw new DelayedError()
    }
    const cancelled = await q.isCancelled(job.id!)
    if (cancelled) return fail(cancelledError(cancelled))
    let pairs: string[]
    try {
      pairs = pairsFor(op, job.data.input)
    } catch (e) {
      return fail(e)
    }

    const ac = new AbortController()
    // One listener per concurrent remote command of the run (a rollout's gate polls, parallel
    // stages): many by design, not a leak (each is removed when its command ends).
    setMaxListeners(0, ac.signal)
    const held = await q.locks.tryAcquire(pairs, `job ${job.id} on ${id}`, (why) => ac.abort(new HafwError(why, { transient: true })))
    if (!held.ok) {
      // Wait without holding a worker slot and without spending an attempt: back to the
      // delayed set, woken when the holder releases the pair.
      const wait = q.key('lockwait', held.pair)
      const [[, first], [, rank]] = (await q.redis.multi().zadd(wait, 'NX', Date.now(), job.id!).zrank(wait, job.id!).exec())! as [[null, number], [null, number | null]]
      if (first) events.emit('wait', 'info', `waiting for pair ${held.pair}: held by ${held.holder}`, scope)
      await events.flush()
      // Each release wakes the oldest waiter (wakeWaiters), so the delay only covers a lost wake
      // (a holder killed -9). It grows with the waiters ahead: otherwise every waiter of a busy
      // pair comes back every lockWaitMs only to be delayed again, and the churn starves the queue.
      await job.moveToDelayed(Date.now() + Math.round(t.lockWaitMs * (0.5 + Math.random()) * (1 + (rank ?? 0))), token)
      throw new DelayedError()
    }
    const onCancel = () => ac.abort(cancelledError(String(signal?.reason ?? 'cancelled')))
    const onShutdown = () => ac.abort(new Shutdown())
    signal?.addEventListener('abort', onCancel, { once: true })
    shutdown.signal.addEventListener('abort', onShutdown, { once: true })
    // Either may have fired while we were taking the lock.
    if (signal?.aborted) onCancel()
    if (shutdown.signal.aborted) onShutdown()
    try {
      if (pairs.length) await Promise.all(pairs.map((p) => q.redis.zrem(q.key('lockwait', p), job.id!)))
      events.emit('start', 'info', `started on ${id} (attempt ${job.attemptsMade + 1}/${job.opts.attempts ?? 1}${pairs.length ? `, pairs ${pairs.map((p) => `${p} (fence ${held.lock.fence[p]})`).join(', ')}` : ''})`, scope)
      let result: unknown
      try {
        result = await op.fn(job.data.input, events.progress, ac.signal, held.lock)
      } catch (e) {
        const why = ac.signal.aborted ? ac.signal.reason : e
        if (why instanceof Shutdown) {
          events.emit('requeue', 'warn', `${id} is shutting down: job handed back to the queue`, scope)
          await events.flush()
          await job.moveToDelayed(Date.now(), token)
          throw new DelayedError()
        }
        return await fail(why)
      }
      events.emit('done', 'info', 'completed', scope)
      await events.flush()
      return result ?? null
    } finally {
      signal?.removeEventListener('abort', onCancel)
      shutdown.signal.removeEventListener('abort', onShutdown)
      await held.lock.release().catch(() => {})
      await wakeWaiters(q, pairs)
    }
  }

  let worker: Worker
  const processor = async (job: Job<JobData>, token: string | undefined, signal: AbortSignal | undefined): Promise<unknown> => {
    active++
    let final = true
    try {
      return await runOne(job, token!, signal)
    } catch (e) {
      final = !(e instanceof DelayedError || e instanceof WaitingChildrenError) && !(isTransient(e) && job.attemptsMade + 1 < (job.opts.attempts ?? 1))
      throw e
    } finally {
      active--
      // A CLI's own worker: stop fetching before bullmq picks the next job with this one's completion.
      if (final && opts.untilJob === job.id) void worker.close()
    }
  }
  worker = new Worker(q.name, processor, {
    connection: q.redis,
    prefix: q.prefix,
    concurrency,
    lockDuration: t.jobLockMs,
    stalledInterval: t.stalledIntervalMs,
    maxStalledCount: t.maxStalledCount,
    autorun: false,
  })
  worker.on('error', (e) => log?.({ t: Date.now(), level: 'warn', scope: 'worker', message: e.message }))
  worker.on('completed', (job) => void wakeRollout(q, job))
  worker.on('failed', (job, e) => {
    if (job) void wakeRollout(q, job)
    // Failures bullmq decides itself (a job stalled too often) never reach our processor.
    if (job && !job.data?.root && /stalled/.test(e.message)) {
      new EventWriter(q.redis, q.key('events', job.id!), job.id!, t.eventsTtlS, echo).emit('fail', 'error', `failed: ${e.message}`)
    }
  })

  // Cancellation reaches whichever worker runs the job.
  const sub = q.redis.duplicate()
  sub.on('error', () => {})
  await sub.subscribe(q.key('cancel-channel'))
  sub.on('message', (_ch, msg) => {
    try {
      const { id: jobId, reason } = JSON.parse(msg) as { id: string; reason: string }
      worker.cancelJob(jobId, reason)
    } catch {
      // Not ours.
    }
  })

  const info: WorkerInfo = { id, host: hostname(), pid: process.pid, concurrency, ops: [...operationNames(), ROLLOUT], startedAt: new Date().toISOString() }
  const beat = async () => {
    await q.redis
      .multi()
      .zadd(q.key('workers'), Date.now() + 3 * t.heartbeatMs, id)
      .hset(q.key('workerinfo'), id, JSON.stringify(info))
      .exec()
  }
  let hb: NodeJS.Timeout | undefined
  if (opts.heartbeat !== false) {
    await beat()
    hb = setInterval(() => void beat().catch(() => {}), t.heartbeatMs)
  }

  void worker.run().catch((e) => log?.({ t: Date.now(), level: 'error', scope: 'worker', message: (e as Error).message }))
  await worker.waitUntilReady()

  let closing: Promise<void> | undefined
  return {
    id,
    worker,
    running: () => active,
    abortRunning: () => shutdown.abort(),
    close: ({ graceMs = 30_000 } = {}) =>
      (closing ??= (async () => {
        clearInterval(hb)
        await q.redis.multi().zrem(q.key('workers'), id).hdel(q.key('workerinfo'), id).exec().catch(() => {})
        const timer = setTimeout(() => shutdown.abort(), graceMs)
        try {
          await worker.close()
        } finally {
          clearTimeout(timer)
          sub.disconnect()
        }
      })()),
  }
}

/** Wake the oldest job waiting for each released pair instead of letting it sleep out its delay. */
async function wakeWaiters(q: JobQueue, pairs: string[]): Promise<void> {
  for (const p of pairs) {
    const key = q.key('lockwait', p)
    for (let i = 0; i < 5; i++) {
      const [next] = await q.redis.zrange(key, 0, 0).catch(() => [] as string[])
      if (!next) break
      const job = await q.queue.getJob(next).catch(() => undefined)
      const state = job ? await job.getState() : 'unknown'
      if (state === 'delayed') {
        await job!.promote().catch(() => {})
        break
      }
      if (state === 'waiting' || state === 'active' || state === 'prioritized') break
      await q.redis.zrem(key, next) // finished or gone: not a waiter any more
    }
  }
}

/**
 * `hafw worker`: run until SIGTERM/SIGINT. The first signal stops taking jobs and lets running
 * ones finish (up to graceMs, then they are aborted and handed back); a second aborts at once.
 */
export async function runWorkerUntilSignal(q: JobQueue, opts: WorkerOptions & { graceMs?: number } = {}): Promise<void> {
  const w = await startWorker(q, opts)
  const log = opts.log ?? (() => {})
  log({ t: Date.now(), level: 'info', scope: 'worker', message: `${w.id} ready: queue ${q.prefix}:${q.name} on ${q.target.describe}, concurrency ${opts.concurrency ?? 1}, operations: ${operationNames().join(', ') || 'none'}` })
  await new Promise<void>((resolve, reject) => {
    let signals = 0
    const on = (sig: NodeJS.Signals) => {
      signals++
      if (signals === 1) {
        log({ t: Date.now(), level: 'info', scope: 'worker', message: `${sig}: stopping; ${w.running()} running job(s) get ${Math.round((opts.graceMs ?? 30_000) / 1000)} s to finish (signal again to abort them now)` })
        w.close({ graceMs: opts.graceMs ?? 30_000 }).then(resolve, reject)
      } else {
        log({ t: Date.now(), level: 'warn', scope: 'worker', message: `${sig}: aborting running jobs (they go back to the queue)` })
        w.abortRunning()
      }
    }
    process.on('SIGTERM', on)
    process.on('SIGINT', on)
  })
  log({ t: Date.now(), level: 'info', scope: 'worker', message: `${w.id} stopped` })
}
