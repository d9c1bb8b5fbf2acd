import type { Redis } from 'ioredis'
import type { Progress, ProgressEvent, ProgressLevel } from '@hafw/core'

/**
 * A job's progress travels through one Redis stream per root job (a rollout's children write
 * into their parent's stream), so a CLI that starts reading late still sees every event from
 * the first one, and `hafw jobs logs` replays them.
 */
export interface JobEvent extends ProgressEvent {
  /** The job that emitted it. */
  job: string
  /** Lifecycle marker ('op' for the operation's own events). */
  kind: 'op' | 'queued' | 'wait' | 'start' | 'done' | 'retry' | 'fail' | 'requeue' | 'rollout'
}

export class EventWriter {
  private chain: Promise<unknown> = Promise.resolve()

  constructor(
    private readonly redis: Redis,
    private readonly key: string,
    private readonly jobId: string,
    private readonly ttlS: number,
    private readonly echo?: (e: JobEvent) => void,
  ) {}

  /** The Progress handed to the operation. Writes are ordered and never block the operation. */
  readonly progress: Progress = (e) => this.push({ ...e, job: this.jobId, kind: 'op' })

  emit(kind: JobEvent['kind'], level: ProgressLevel, message: string, scope = ''): void {
    this.push({ t: Date.now(), level, scope, message, job: this.jobId, kind })
  }

  /** Events waiting for the write in flight: they go together in the next one (one round trip, one wake-up of each reader). */
  private pending: string[] = []

  private push(e: JobEvent): void {
    this.echo?.(e)
    this.pending.push(JSON.stringify(e))
    if (this.pending.length > 1) return
    this.chain = this.chain
      .then(() => {
        const bodies = this.pending.splice(0)
        const m = this.redis.multi()
        for (const body of bodies) m.xadd(this.key, 'MAXLEN', '~', '20000', '*', 'e', body)
        return m.expire(this.key, this.ttlS).exec()
      })
      .catch(() => {
        // Progress is best effort: a Redis hiccup must not fail the operation.
      })
  }

  /** Wait until every event so far is in Redis. */
  flush(): Promise<unknown> {
    return this.chain
  }
}

/** Read events after `from` (exclusive); blocks up to blockMs when there are none. */
export async function readEvents(redis: Redis, key: string, from: string, blockMs?: number): Promise<{ last: string; events: JobEvent[] }> {
  const args: (string | number)[] = ['COUNT', 1000]
  if (blockMs !== undefined) args.push('BLOCK', blockMs)
  const res = (await redis.call('XREAD', ...args, 'STREAMS', key, from)) as [string, [string, string[]][]][] | null
  const entries = res?.[0]?.[1] ?? []
  const events: JobEvent[] = []
  for (const [, fields] of entries) {
    const i = fields.indexOf('e')
    if (i >= 0) events.push(JSON.parse(fields[i + 1]!) as JobEvent)
  }
  return { last: entries.length ? entries[entries.length - 1]![0] : from, events }
}

/** The operation-level view of a job event, for a caller's Progress. */
export function toProgressEvent(e: JobEvent): ProgressEvent {
  const out: ProgressEvent = { t: e.t, level: e.level, scope: e.scope, message: e.message }
  if (e.fraction !== undefined) out.fraction = e.fraction
  return out
}

export function formatEvent(e: JobEvent): string {
  const tag = e.level === 'info' ? '' : `${e.level}: `
  return `${new Date(e.t).toISOString()} job ${e.job} ${e.scope ? `[${e.scope}] ` : ''}${tag}${e.message}`
}
