import { DelayedError, WaitingChildrenError, type Job } from 'bullmq'
import { HafwError } from '@hafw/core'
import { assertNoSecrets, pairsFor, ROLLOUT, type RegisteredOperation } from './registry.js'
import type { JobError } from './errors.js'
import type { EventWriter } from './events.js'
import { childJobId, requireOperation, submitter, type JobData, type JobQueue } from './queue.js'

/**
 * A rollout runs one operation on many pairs: a parent job with one child job per pair.
 * The first `canary` pairs run first; the others start only once all of them completed.
 * At most `parallel` pairs run at once (a sliding window, not waves). The first failure stops
 * new pairs from starting (running ones finish); the rollout then fails with a summary.
 */
export interface RolloutInput {
  /** The per-pair operation (registered, e.g. "apply"). */
  op: string
  /** One entry per pair, in rollout order; `input` is that pair's operation input. */
  items: { pair: string; input: unknown }[]
  canary?: number
  parallel?: number
  /** Default true. False: keep going and report every failure at the end. */
  stopOnFailure?: boolean
}

export interface PairOutcome {
  pair: string
  jobId: string
  state: 'completed' | 'failed' | 'not started'
  result?: unknown
  error?: string
}

export interface RolloutResult {
  op: string
  ok: boolean
  cancelled: boolean
  completed: number
  failed: number
  notStarted: number
  pairs: PairOutcome[]
}

/**
 * Create the parent with its first children atomically (bullmq FlowProducer): the canary pairs
 * (up to `parallel` of them). The parent sleeps in waiting-children until they are done, then
 * schedules the rest itself.
 */
export async function submitRollout(q: JobQueue, r: RolloutInput, opts: { lifo?: boolean } = {}): Promise<string> {
  const spec = await requireOperation(r.op)
  const canary = r.canary ?? 0
  const parallel = r.parallel ?? 1
  if (!r.items.length) throw new HafwError('rollout: no pairs')
  if (!Number.isInteger(canary) || canary < 0 || canary > r.items.length) throw new HafwError(`rollout: canary must be 0..${r.items.length}, found ${canary}`)
  if (!Number.isInteger(parallel) || parallel < 1) throw new HafwError(`rollout: parallel must be a positive integer, found ${parallel}`)
  const seen = new Set<string>()
  for (const it of r.items) {
    if (seen.has(it.pair)) throw new HafwError(`rollout: pair ${it.pair} is listed twice`)
    seen.add(it.pair)
    const pairs = pairsFor(spec, it.input)
    if (!pairs.includes(it.pair)) throw new HafwError(`rollout: the ${r.op} input for pair ${it.pair} locks ${pairs.join(', ') || 'no pair'}, not ${it.pair}`)
  }
  assertNoSecrets(r.items)
  const input: RolloutInput = { op: r.op, items: r.items, canary, parallel, stopOnFailure: r.stopOnFailure ?? true }
  const id = `r${await q.redis.incr(q.key('rollout-seq'))}`
  const by = submitter()
  const data: JobData = { input, pairs: r.items.map((i) => i.pair), by }
  const first = canary > 0 ? r.items.slice(0, Math.min(canary, parallel)) : []
  await q.flowProducer().add({
    name: ROLLOUT,
    queueName: q.name,
    data,
    // The parent's own attempts cover Redis hiccups while it schedules (its polls spend none).
    opts: { ...q.jobOptions(spec), jobId: id, attempts: 5, backoff: { type: 'exponential', delay: 1000 }, ...(opts.lifo ? { lifo: true } : {}) },
    children: first.map((it) => ({ name: r.op, queueName: q.name, data: childData(id, it, by), opts: childOpts(q, spec, id, it.pair) })),
  })
  return id
}

/**
 * A child job finished (completed, or failed an attempt): wake its rollout parent from its poll
 * delay, so that the next pair starts now. Best effort: the poll is the fallback.
 */
export async function wakeRollout(q: JobQueue, child: Job<JobData>): Promise<void> {
  const id = child.parent?.id
  if (!id || !child.data?.root) return
  const parent = await q.queue.getJob(id).catch(() => undefined)
  if (parent?.name === ROLLOUT && (await parent.getState().catch(() => '')) === 'delayed') await parent.promote().catch(() => {})
}

const childData = (root: string, it: { pair: string; input: unknown }, by: string): JobData => ({ input: it.input, pairs: [it.pair], root, by })

function childOpts(q: JobQueue, spec: RegisteredOperation, parentId: string, pair: string) {
  // A failed child is recorded in the parent's "failed" list instead of blocking it forever.
  return { ...q.jobOptions(spec), jobId: childJobId(parentId, pair), ignoreDependencyOnFailure: true }
}

/** One step of the parent: look at the children, start what may start, finish or sleep. */
export async function processRollout(
  q: JobQueue,
  job: Job<JobData>,
  token: string,
  events: EventWriter,
  fail: (e: unknown) => Promise<never>,
): Promise<RolloutResult> {
  const r = job.data.input as Required<RolloutInput>
  const spec = await requireOperation(r.op)
  const deps = await job.getDependencies()
  const processed = deps.processed ?? {}
  const ignored = deps.ignored ?? {}
  const pending = new Set(deps.unprocessed ?? [])
  const key = (pair: string) => q.jobKey(childJobId(job.id!, pair))
  const stateOf = (pair: string) => (key(pair) in processed ? 'completed' : key(pair) in ignored ? 'failed' : pending.has(key(pair)) ? 'running' : 'new')
  const states = r.items.map((it) => stateOf(it.pair))
  const count = (s: string) => states.filter((x) => x === s).length

  const cancelled = await q.isCancelled(job.id!)
  const stop = !!cancelled || (r.stopOnFailure && count('failed') > 0)
  if (!stop) {
    const canaryDone = r.items.slice(0, r.canary).every((it) => stateOf(it.pair) === 'completed')
    let slots = r.parallel - count('running')
    for (let i = 0; i < r.items.length && slots > 0; i++) {
      if (states[i] !== 'new' || (i >= r.canary && !canaryDone)) continue
      const it = r.items[i]!
      await q.queue.add(r.op, childData(job.id!, it, job.data.by), { ...childOpts(q, spec, job.id!, it.pair), parent: { id: job.id!, queue: job.queueQualifiedName } })
      states[i] = 'running'
      slots--
      events.emit('rollout', 'info', `pair ${it.pair}: started as job ${childJobId(job.id!, it.pair)} (${r.items.length - count('new')}/${r.items.length})`)
    }
  }

  if (count('running') > 0 || (!stop && count('new') > 0)) {
    await job.updateProgress({ completed: count('completed'), failed: count('failed'), running: count('running'), total: r.items.length })
    await events.flush()
    // Nothing more can start: sleep until the last running child is done (bullmq wakes the
    // parent then). Otherwise poll; a child that finishes wakes the parent sooner (wakeRollout).
    const waitAll = stop || count('new') === 0
    if (waitAll && (await job.moveToWaitingChildren(token))) throw new WaitingChildrenError()
    // (waitAll here: the children finished meanwhile; look again at once)
    await job.moveToDelayed(Date.now() + (waitAll ? 0 : q.timings.rolloutPollMs), token)
    throw new DelayedError()
  }

  const pairs: PairOutcome[] = r.items.map((it, i) => {
    const o: PairOutcome = { pair: it.pair, jobId: childJobId(job.id!, it.pair), state: states[i] === 'new' ? 'not started' : (states[i] as 'completed' | 'failed') }
    if (o.state === 'completed') o.result = processed[key(it.pair)]
    if (o.state === 'failed') o.error = String(ignored[key(it.pair)]).split('\n')[0]
    return o
  })
  const result: RolloutResult = {
    op: r.op,
    ok: count('completed') === r.items.length,
    cancelled: !!cancelled,
    completed: count('completed'),
    failed: count('failed'),
    notStarted: count('new'),
    pairs,
  }
  if (result.ok) {
    events.emit('done', 'info', `rollout completed: ${result.completed} pair(s)`)
    await events.flush()
    return result
  }
  const firstFailed = pairs.find((p) => p.state === 'failed')
  const lines = pairs.filter((p) => p.state !== 'completed').map((p) => `  ${p.pair}: ${p.state}${p.error ? `: ${p.error}` : ''}`)
  const head = cancelled
    ? `rollout ${job.id} cancelled`
    : `rollout ${job.id} stopped: pair ${firstFailed!.pair} failed (${result.completed} completed, ${result.failed} failed, ${result.notStarted} not started)`
  // Exit code of the rollout: the first failed pair's (cancelled: 130).
  let exitCode = cancelled ? 130 : 1
  if (!cancelled && firstFailed) {
    const stored = await q.redis.hget(q.jobKey(firstFailed.jobId), 'hafwError')
    if (stored) exitCode = (JSON.parse(stored) as JobError).exitCode
  }
  const err = new HafwError([head, ...lines].join('\n'), { exitCode })
  return fail(Object.assign(err, { details: result }))
}
