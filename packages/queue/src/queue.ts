import type { JobsOptions, JobState } from 'bullmq'
import { FlowProducer, Job, Queue } from 'bullmq'
export type { JobState }
import type { Redis } from 'ioredis'
import { hostname, userInfo } from 'node:os'
import { HafwError, sleep, type Progress } from '@hafw/core'
import { assertReachable, connect, resolveRedis, type RedisTarget } from './redis.js'
import { assertNoSecrets, loadOperation, pairsFor, ROLLOUT, type OperationRef, type RegisteredOperation } from './registry.js'
import { PairLocks } from './lock.js'
import { deserializeError, type JobError } from './errors.js'
import { formatEvent, readEvents, toProgressEvent, type JobEvent } from './events.js'
import { submitRollout, type RolloutInput, type RolloutResult } from './rollout.js'

/** Every delay the queue uses; tests shrink them, production keeps the defaults. */
export interface Timings {
  /** Pair lock TTL: how long a dead holder keeps a pair (renewed every third of it). */
  lockTtlMs: number
  /** A job waiting for a pair re-checks at least this often (±50 %); releases wake it sooner. */
  lockWaitMs: number
  /** How often a rollout parent looks at its children. */
  rolloutPollMs: number
  /** Worker heartbeat period; a worker silent for 3 periods counts as gone. */
  heartbeatMs: number
  /** bullmq job lock: a killed worker's job is declared stalled after about this long... */
  jobLockMs: number
  /** ...found by a stalled check running this often... */
  stalledIntervalMs: number
  /** ...and retried this many times before it fails ("stalled more than allowable limit"). */
  maxStalledCount: number
  /** How long progress streams are kept after their last event. */
  eventsTtlS: number
}

export const DEFAULT_TIMINGS: Timings = {
  lockTtlMs: 30_000,
  lockWaitMs: 2_000,
  rolloutPollMs: 1_000,
  heartbeatMs: 5_000,
  jobLockMs: 30_000,
  stalledIntervalMs: 30_000,
  maxStalledCount: 1,
  eventsTtlS: 30 * 86400,
}

/**
 * History is bounded. bullmq trims the completed/failed sets as a whole whenever a job
 * finishes with these options, so every job (scheduled ones too) must use the same values.
 */
export const RETENTION = {
  removeOnComplete: { count: 5000, age: 30 * 86400 },
  removeOnFail: { count: 5000, age: 90 * 86400 },
} as const

export interface QueueConfig {
  target?: RedisTarget
  /** Redis key prefix (default "hafw"). Pair locks are shared by every queue under one prefix. */
  prefix?: string
  /** Queue name (default $HAFW_QUEUE or "jobs"). */
  name?: string
  timings?: Partial<Timings>
}

/** What every job carries. No secrets: inputs name files and pairs, never their contents. */
export interface JobData {
  input: unknown
  /** The pairs the job locks (a rollout parent: the pairs of its children). */
  pairs: string[]
  /** The job whose progress stream this job writes to (a rollout child: its parent). */
  root?: string
  /** user@host that submitted it. */
  by: string
}

export interface SubmitOptions {
  /** Put the job at the head of the queue (used when this process will run it itself). */
  lifo?: boolean
  jobId?: string
}

export interface WaitOptions {
  progress?: Progress
  signal?: AbortSignal
  /** Run the job in this process when no worker for it is listening (default true). */
  inProcess?: boolean
}

export type SubmitAndWaitResult<R> = { jobId: string; detached: true } | { jobId: string; detached: false; result: R }

export interface JobSummary {
  id: string
  op: string
  state: JobState | 'unknown'
  pairs: string[]
  attemptsMade: number
  attempts: number
  createdAt: string
  startedAt?: string
  finishedAt?: string
  durationMs?: number
  error?: string
  parent?: string
  scheduler?: string
  cancelRequested?: boolean
}

export interface JobDetail extends JobSummary {
  input: unknown
  result?: unknown
  failure?: JobError
  /** Rollout parents: one line per pair. */
  children?: { pair: string; jobId: string; state: string; error?: string }[]
  /** Pairs this job waits for, and who holds them. */
  heldBy?: Record<string, string>
}

export interface ScheduleInfo {
  id: string
  op: string
  cron?: string
  tz?: string
  next?: string
  pairs: string[]
  input: unknown
  iterations?: number
}

export interface WorkerInfo {
  id: string
  host: string
  pid: number
  concurrency: number
  ops: string[]
  startedAt: string
}

const WAITING: readonly string[] = ['waiting', 'delayed', 'prioritized', 'waiting-children']
export const submitter = () => `${safeUser()}@${hostname()}`
function safeUser(): string {
  try {
    return userInfo().username
  } catch {
    return String(process.getuid?.() ?? 'unknown')
  }
}
const iso = (ms?: number) => (ms ? new Date(ms).toISOString() : undefined)

/**
 * The queue as hafw uses it: one bullmq queue (job name = operation name), pair locks, progress
 * streams, worker heartbeats and cancellation. Open it, use it, close it.
 */
export class JobQueue {
  readonly queue: Queue
  readonly locks: PairLocks
  private flows?: FlowProducer

  private constructor(
    readonly redis: Redis,
    readonly target: RedisTarget,
    readonly prefix: string,
    readonly name: string,
    readonly timings: Timings,
  ) {
    this.queue = new Queue(name, { connection: redis, prefix })
    this.queue.on('error', () => {
      // Connection errors surface through the commands that hit them.
    })
    this.locks = new PairLocks(redis, (p) => `${prefix}:lock:${p}`, timings.lockTtlMs)
  }

  static async open(cfg: QueueConfig = {}): Promise<JobQueue> {
    const name = cfg.name ?? process.env.HAFW_QUEUE ?? 'jobs'
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(name)) throw new HafwError(`queue name "${name}" (HAFW_QUEUE): expected letters, digits, "_" or "-"`)
    const target = cfg.target ?? (await resolveRedis())
    const redis = connect(target)
    redis.on('error', () => {})
    try {
      await assertReachable(redis, target)
    } catch (e) {
      redis.disconnect()
      throw e
    }
    return new JobQueue(redis, target, cfg.prefix ?? 'hafw', name, { ...DEFAULT_TIMINGS, ...cfg.timings })
  }

  async close(): Promise<void> {
    await this.flows?.close()
    await this.queue.close()
    await this.redis.quit().catch(() => this.redis.disconnect())
  }

  /** Keys this package adds next to bullmq's. */
  key(kind: 'events' | 'cancel' | 'lockwait' | 'notice', id: string): string
  key(kind: 'workers' | 'workerinfo' | 'cancel-channel' | 'rollout-seq'): string
  key(kind: string, id?: string): string {
    return `${this.prefix}:${this.name}:hafw:${kind}${id === undefined ? '' : `:${id}`}`
  }

  /** The bullmq hash of a job (we keep its structured error in a field of it). */
  jobKey(id: string): string {
    return this.queue.toKey(id)
  }

  flowProducer(): FlowProducer {
    this.flows ??= new FlowProducer({ connection: this.redis, prefix: this.prefix })
    return this.flows
  }

  jobOptions(op: RegisteredOperation): JobsOptions {
    return { attempts: op.attempts, backoff: { type: 'exponential', delay: op.backoffMs }, ...RETENTION }
  }

  /** Submit one operation run; returns the job id. The input is checked (pairs, no secrets) here. */
  async submit<I>(op: string | OperationRef<I, unknown>, input: I, opts: SubmitOptions = {}): Promise<string> {
    const spec = await requireOperation(typeof op === 'string' ? op : op.name)
    const pairs = pairsFor(spec, input)
    assertNoSecrets(input)
    const data: JobData = { input, pairs, by: submitter() }
    const job = await this.queue.add(spec.name, data, { ...this.jobOptions(spec), ...(opts.lifo ? { lifo: true } : {}), ...(opts.jobId ? { jobId: opts.jobId } : {}) })
    return job.id!
  }

  /**
   * Wait for a job: stream its progress (and its children's) to `progress`, return its result or
   * throw its error (same message, exit code and transient flag as where it ran). When no worker
   * that knows the operation is listening, this process runs the job itself through the same
   * worker code (same pair locks, same record). Aborting `signal` cancels the job.
   */
  async wait<R>(jobId: string, opts: WaitOptions = {}): Promise<R> {
    const job = await this.getJob(jobId)
    const needs = job.name === ROLLOUT ? (job.data.input as { op: string }).op : job.name
    let inproc: { close(o?: { graceMs?: number }): Promise<void> } | undefined
    let cancelling = false
    try {
      const state = await this.follow(jobId, (e) => opts.progress?.(toProgressEvent(e)), async (st) => {
        if (opts.signal?.aborted && !cancelling) {
          cancelling = true
          await this.cancel(jobId, 'interrupted').catch(() => {})
        }
        if (!inproc && opts.inProcess !== false && WAITING.includes(st) && !(await this.hasWorkers(needs))) {
          const { startWorker } = await import('./worker.js')
          const parallel = job.name === ROLLOUT ? Number((job.data.input as { parallel?: number }).parallel ?? 1) : 1
          opts.progress?.({ t: Date.now(), level: 'info', scope: '', message: `no worker is listening: running job ${jobId} in this process` })
          inproc = await startWorker(this, { concurrency: Math.max(1, parallel), heartbeat: false, untilJob: jobId })
        }
      })
      if (state === 'completed') return (await this.getJob(jobId)).returnvalue as R
      throw await this.failure(jobId)
    } finally {
      await inproc?.close({ graceMs: 0 })
    }
  }

  /** Submit, then wait (or with detach, return at once: the workers will run it). */
  submitAndWait<I, R>(op: string | OperationRef<I, R>, input: I, opts: WaitOptions & { detach?: boolean } = {}): Promise<SubmitAndWaitResult<R>> {
    const name = typeof op === 'string' ? op : op.name
    return this.run<R>(name, (lifo) => this.submit(name, input, { lifo }), opts)
  }

  /** A rollout (see RolloutInput) as one job, submitted and waited for like any other. */
  rollout(r: RolloutInput, opts: WaitOptions & { detach?: boolean } = {}): Promise<SubmitAndWaitResult<RolloutResult>> {
    return this.run<RolloutResult>(r.op, (lifo) => submitRollout(this, r, { lifo }), opts)
  }

  private async run<R>(op: string, submit: (lifo: boolean) => Promise<string>, opts: WaitOptions & { detach?: boolean }): Promise<SubmitAndWaitResult<R>> {
    const listening = await this.hasWorkers(op)
    if (opts.detach) {
      const jobId = await submit(false)
      if (!listening) opts.progress?.({ t: Date.now(), level: 'warn', scope: '', message: `no worker for "${op}" is listening: job ${jobId} waits until \`hafw worker\` runs` })
      return { jobId, detached: true }
    }
    // Nobody else will take it: put it first so this process's own worker runs it first.
    const jobId = await submit(!listening)
    return { jobId, detached: false, result: await this.wait<R>(jobId, opts) }
  }

  /**
   * Deliver a job's events (a root job: its children's too) from the first one; with onPoll,
   * keep going until the job is completed or failed and return that state.
   */
  async follow(jobId: string, onEvent: (e: JobEvent) => void, onPoll?: (state: JobState | 'unknown') => Promise<void>): Promise<JobState | 'unknown'> {
    const job = await this.getJob(jobId)
    const data = job.data as JobData
    const root = data.root ?? jobId
    const mine = (e: JobEvent) => root === jobId || e.job === jobId
    const reader = this.redis.duplicate()
    reader.on('error', () => {})
    let last = '0-0'
    try {
      const drain = async () => {
        for (;;) {
          const r = await readEvents(reader, this.key('events', root), last)
          last = r.last
          r.events.filter(mine).forEach(onEvent)
          if (r.events.length < 1000) return
        }
      }
      if (!onPoll) {
        await drain()
        return this.queue.getJobState(jobId)
      }
      // First look at the state at once (a CLI may have to run the job itself), then block on
      // the stream. While events flow the job is being worked on: its state is looked at twice a
      // second, not per event. After the job's own final event it is completed or failed within
      // a few ms: poll for that with our own short sleeps, not a short BLOCK, which Redis ends
      // only on its next cron tick (hz 10: a BLOCK 20 took 90 ms, a third of a CLI's overhead).
      let checked = 0
      /** polls since the job's own final event was seen (0: not seen) */
      let ended = 0
      for (let first = true; ; first = false) {
        const block = !first && !ended
        const r = await readEvents(reader, this.key('events', root), last, block ? 500 : undefined)
        last = r.last
        r.events.filter(mine).forEach(onEvent)
        if (r.events.some((e) => e.job === jobId && (e.kind === 'done' || e.kind === 'fail'))) ended ||= 1
        if (r.events.length && !ended && block && Date.now() - checked < 500) continue
        checked = Date.now()
        const state = await this.queue.getJobState(jobId)
        if (state === 'completed' || state === 'failed') {
          await drain()
          return state
        }
        if (state === 'unknown') throw new HafwError(`job ${jobId} no longer exists (removed while waiting?)`)
        await onPoll(state)
        // Still finishing: look again soon. Back in the queue (a retry): wait on the stream again.
        if (state !== 'active') ended = 0
        if (ended) await sleep(Math.min(2 ** ended++, 64))
      }
    } finally {
      reader.disconnect()
    }
  }

  async getJob(jobId: string): Promise<Job<JobData>> {
    const job = (await Job.fromId(this.queue, jobId)) as Job<JobData> | undefined
    if (!job) throw new HafwError(`no job ${jobId} in queue ${this.prefix}:${this.name}`, { exitCode: 2 })
    return job
  }

  /** The error of a failed job as the CLI should throw it. */
  async failure(jobId: string): Promise<HafwError> {
    const job = await this.getJob(jobId)
    const stored = await this.redis.hget(this.jobKey(jobId), 'hafwError')
    const e = stored ? (JSON.parse(stored) as JobError) : undefined
    // bullmq may fail a job on its own (stalled too often): then only failedReason is current.
    if (e && e.message === job.failedReason) return deserializeError(jobId, e)
    return deserializeError(jobId, { name: 'HafwError', message: `job ${jobId} failed: ${job.failedReason ?? 'unknown reason'}`, exitCode: 1, transient: false })
  }

  // ---- workers -------------------------------------------------------------------------

  async workers(): Promise<WorkerInfo[]> {
    const now = Date.now()
    const dead = await this.redis.zrangebyscore(this.key('workers'), '-inf', now)
    if (dead.length) {
      await this.redis.multi().zrem(this.key('workers'), ...dead).hdel(this.key('workerinfo'), ...dead).exec()
    }
    const ids = await this.redis.zrangebyscore(this.key('workers'), now, '+inf')
    if (!ids.length) return []
    const infos = await this.redis.hmget(this.key('workerinfo'), ...ids)
    return infos.filter((s): s is string => !!s).map((s) => JSON.parse(s) as WorkerInfo)
  }

  /** Whether a live worker (not a CLI's in-process one) can run this operation. */
  async hasWorkers(op?: string): Promise<boolean> {
    return (await this.workers()).some((w) => !op || w.ops.includes(op))
  }

  // ---- jobs ----------------------------------------------------------------------------

  summarize(job: Job<JobData>, state: JobState | 'unknown', cancelRequested = false): JobSummary {
    const s: JobSummary = {
      id: job.id!,
      op: job.name === ROLLOUT ? `${ROLLOUT}:${(job.data.input as { op: string }).op}` : job.name,
      state,
      pairs: job.data?.pairs ?? [],
      attemptsMade: job.attemptsMade,
      attempts: job.opts.attempts ?? 1,
      createdAt: iso(job.timestamp)!,
    }
    if (job.processedOn) s.startedAt = iso(job.processedOn)
    if (job.finishedOn) {
      s.finishedAt = iso(job.finishedOn)
      if (job.processedOn) s.durationMs = job.finishedOn - job.processedOn
    }
    if (state === 'failed' && job.failedReason) s.error = job.failedReason.split('\n')[0]
    if (job.parent?.id) s.parent = job.parent.id
    if (job.repeatJobKey) s.scheduler = job.repeatJobKey
    if (cancelRequested) s.cancelRequested = true
    return s
  }

  async list(filter: { state?: JobState; op?: string; pair?: string; limit?: number } = {}): Promise<JobSummary[]> {
    const limit = filter.limit ?? 50
    const states: JobState[] = filter.state ? [filter.state] : ['active', 'waiting', 'prioritized', 'delayed', 'waiting-children', 'completed', 'failed']
    const rows: JobSummary[] = []
    for (const st of states) {
      // Filters apply after fetching: fetch more than the limit when filtering.
      const jobs = (await this.queue.getJobs([st], 0, filter.op || filter.pair ? limit * 10 : limit - 1, false)) as Job<JobData>[]
      for (const j of jobs) if (j) rows.push(this.summarize(j, st))
    }
    return rows
      .filter((r) => (!filter.op || r.op === filter.op || r.op === `${ROLLOUT}:${filter.op}`) && (!filter.pair || r.pairs.includes(filter.pair)))
      .sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.id.localeCompare(a.id))
      .slice(0, limit)
  }

  async show(jobId: string): Promise<JobDetail> {
    const job = await this.getJob(jobId)
    const state = await this.queue.getJobState(jobId)
    const d: JobDetail = { ...this.summarize(job, state, (await this.redis.exists(this.key('cancel', jobId))) === 1), input: job.data.input }
    if (state === 'completed') d.result = job.returnvalue
    if (state === 'failed') {
      const f = await this.failure(jobId)
      d.failure = { name: f.name, message: f.message, exitCode: f.exitCode, transient: f.transient }
      const stored = await this.redis.hget(this.jobKey(jobId), 'hafwError')
      if (stored) d.failure = JSON.parse(stored) as JobError
    }
    if (job.name === ROLLOUT) {
      const deps = await job.getDependencies()
      const items = (job.data.input as { items: { pair: string }[] }).items
      d.children = items.map(({ pair }) => {
        const id = childJobId(jobId, pair)
        const k = this.jobKey(id)
        if (deps.processed && k in deps.processed) return { pair, jobId: id, state: 'completed' }
        if (deps.ignored && k in deps.ignored) return { pair, jobId: id, state: 'failed', error: String(deps.ignored[k]).split('\n')[0] }
        if (deps.unprocessed?.includes(k)) return { pair, jobId: id, state: 'running' }
        return { pair, jobId: id, state: 'not started' }
      })
    } else if (WAITING.includes(state)) {
      const held: Record<string, string> = {}
      for (const p of job.data.pairs ?? []) {
        const h = await this.locks.holder(p)
        if (h) held[p] = h
      }
      if (Object.keys(held).length) d.heldBy = held
    }
    return d
  }

  /** Events of a job as log lines (a rollout: with its children's). */
  async logs(jobId: string, follow = false, onLine: (line: string, e: JobEvent) => void = () => {}): Promise<JobEvent[]> {
    const out: JobEvent[] = []
    const on = (e: JobEvent) => {
      out.push(e)
      onLine(formatEvent(e), e)
    }
    await this.follow(jobId, on, follow ? async () => {} : undefined)
    return out
  }

  /**
   * Cancel a job. A running job's AbortSignal fires wherever it runs (pub/sub to every worker);
   * a job that has not started fails as cancelled when a worker (or a waiting CLI) takes it, or,
   * with `remove`, is deleted from the queue at once. A rollout's running children are cancelled
   * with it and no new pair starts.
   */
  async cancel(jobId: string, reason = 'cancelled by operator', opts: { remove?: boolean } = {}): Promise<{ jobId: string; state: string; children: string[]; removed: boolean }> {
    const job = await this.getJob(jobId)
    const state = await this.queue.getJobState(jobId)
    if (state === 'completed' || state === 'failed') throw new HafwError(`job ${jobId} already ${state}`, { exitCode: 2 })
    if (opts.remove) {
      if (state === 'active' || state === 'waiting-children') throw new HafwError(`job ${jobId} is ${state}: cancel it without --remove`, { exitCode: 2 })
      if (job.name === ROLLOUT) throw new HafwError(`job ${jobId} is a rollout: cancel it without --remove`, { exitCode: 2 })
      await job.remove().catch((e: Error) => {
        throw new HafwError(`cannot remove job ${jobId}: ${e.message}`, { exitCode: 2 })
      })
      return { jobId, state, children: [], removed: true }
    }
    const ids = [jobId]
    if (job.name === ROLLOUT) {
      const deps = await job.getDependencies()
      for (const k of deps.unprocessed ?? []) ids.push(k.slice(k.lastIndexOf(':') + 1))
    }
    const m = this.redis.multi()
    for (const id of ids) m.set(this.key('cancel', id), reason, 'EX', 7 * 86400).publish(this.key('cancel-channel'), JSON.stringify({ id, reason }))
    await m.exec()
    // A job delayed (waiting for a pair, or a retry backoff) is woken so it fails now.
    for (const id of ids) if ((await this.queue.getJobState(id)) === 'delayed') await (await this.getJob(id)).promote().catch(() => {})
    return { jobId, state, children: ids.slice(1), removed: false }
  }

  async isCancelled(jobId: string): Promise<string | undefined> {
    return (await this.redis.get(this.key('cancel', jobId))) ?? undefined
  }

  /** Run a failed job again (with its attempts counted afresh). */
  async retry(jobId: string): Promise<{ jobId: string }> {
    const job = await this.getJob(jobId)
    const state = await this.queue.getJobState(jobId)
    if (state !== 'failed') throw new HafwError(`job ${jobId} is ${state}: only failed jobs can be retried`, { exitCode: 2 })
    if (job.name === ROLLOUT) throw new HafwError(`job ${jobId} is a rollout: retry its failed pair jobs, or submit a new rollout for the pairs that did not complete`, { exitCode: 2 })
    if (job.parent?.id) throw new HafwError(`job ${jobId} belongs to rollout ${job.parent.id}, which has stopped: submit a new rollout`, { exitCode: 2 })
    await this.redis.multi().del(this.key('cancel', jobId)).hdel(this.jobKey(jobId), 'hafwError').exec()
    await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true })
    return { jobId }
  }

  // ---- schedules -----------------------------------------------------------------------

  /**
   * Run an operation on a cron schedule (bullmq job scheduler). Jobs it creates are ordinary
   * jobs: same locks, same retention, listed by `hafw jobs`. Re-adding an id replaces it.
   */
  async addSchedule(s: { id: string; op: string; input: unknown; cron: string; tz?: string; pairs?: string[] }): Promise<ScheduleInfo> {
    if (!/^[A-Za-z0-9_.-]{1,100}$/.test(s.id)) throw new HafwError(`schedule name "${s.id}": expected letters, digits, ".", "_" or "-"`)
    const spec = await loadOperation(s.op)
    const pairs = spec ? pairsFor(spec, s.input) : (s.pairs ?? [])
    assertNoSecrets(s.input)
    const data: JobData = { input: s.input, pairs, by: submitter() }
    const opts = spec ? this.jobOptions(spec) : { attempts: 4, backoff: { type: 'exponential', delay: 2000 }, ...RETENTION }
    try {
      await this.queue.upsertJobScheduler(s.id, { pattern: s.cron, ...(s.tz ? { tz: s.tz } : {}) }, { name: s.op, data, opts })
    } catch (e) {
      throw new HafwError(`--cron "${s.cron}": ${(e as Error).message}`)
    }
    return (await this.schedules()).find((x) => x.id === s.id)!
  }

  async schedules(): Promise<ScheduleInfo[]> {
    const list = await this.queue.getJobSchedulers(0, -1, true)
    return list.map((j) => {
      const data = j.template?.data as JobData | undefined
      const s: ScheduleInfo = { id: j.key, op: j.name, pairs: data?.pairs ?? [], input: data?.input }
      if (j.pattern) s.cron = j.pattern
      if (j.tz) s.tz = j.tz
      if (j.next) s.next = iso(j.next)
      if (j.iterationCount !== undefined) s.iterations = j.iterationCount
      return s
    })
  }

  async removeSchedule(id: string): Promise<void> {
    if (!(await this.queue.removeJobScheduler(id))) throw new HafwError(`no schedule "${id}"`, { exitCode: 2 })
  }
}

export async function requireOperation(name: string): Promise<RegisteredOperation> {
  const spec = await loadOperation(name)
  if (!spec) throw new HafwError(`unknown operation "${name}" (not registered in this process)`)
  return spec
}

/** Child job ids are derived from the parent and the pair, so re-adding one is a no-op. */
export function childJobId(parentId: string, pair: string): string {
  return `${parentId}.${pair}`
}


/** Open the default queue (REDIS_URL or the embedded server), run one job, close. */
export async function submitAndWait<I, R>(
  op: string | OperationRef<I, R>,
  input: I,
  opts: WaitOptions & { detach?: boolean; queue?: QueueConfig } = {},
): Promise<SubmitAndWaitResult<R>> {
  const q = await JobQueue.open(opts.queue)
  try {
    return await q.submitAndWait(op, input, opts)
  } finally {
    await q.close()
  }
}

/** Open the default queue, run one rollout, close. */
export async function rollout(r: RolloutInput, opts: WaitOptions & { detach?: boolean; queue?: QueueConfig } = {}): Promise<SubmitAndWaitResult<RolloutResult>> {
  const q = await JobQueue.open(opts.queue)
  try {
    return await q.rollout(r, opts)
  } finally {
    await q.close()
  }
}
