/**
 * Long operations report through a Progress and stop on an AbortSignal, so the same function
 * runs in the CLI, in-process for a job, or on a remote worker.
 */
export type ProgressLevel = 'debug' | 'info' | 'warn' | 'error'

export interface ProgressEvent {
  /** ms since epoch */
  t: number
  level: ProgressLevel
  /** what the event is about: a pair, a node, a file; '' for the operation as a whole */
  scope: string
  message: string
  /** 0..1 when the operation can tell */
  fraction?: number
}

export type Progress = (e: ProgressEvent) => void

/**
 * The pair locks a job holds while its operation runs (the queue's worker passes it). A lock is
 * a lease: a holder that stalls past its TTL loses it without knowing, so whatever a run
 * changes on a node carries the pair's fencing token, and the node refuses a token lower than
 * one it has already seen.
 */
export interface Lease {
  /** Fencing token per locked pair: every later holder of a pair gets a larger one. */
  readonly fence: Readonly<Record<string, number>>
}

export type Operation<I, R> = (input: I, progress: Progress, signal: AbortSignal, lease?: Lease) => Promise<R>

/** Convenience: build events without repeating the timestamp. */
export function reporter(progress: Progress, scope = '') {
  const emit = (level: ProgressLevel, message: string, fraction?: number) =>
    progress(fraction === undefined ? { t: Date.now(), level, scope, message } : { t: Date.now(), level, scope, message, fraction })
  return {
    info: (m: string, fraction?: number) => emit('info', m, fraction),
    warn: (m: string) => emit('warn', m),
    debug: (m: string) => emit('debug', m),
    error: (m: string) => emit('error', m),
    scoped: (sub: string) => reporter(progress, scope ? `${scope}/${sub}` : sub),
  }
}

export const silentProgress: Progress = () => {}

/** Progress that writes human-readable lines to stderr (logs never go to stdout). */
export function stderrProgress(minLevel: ProgressLevel = 'info'): Progress {
  const order: Record<ProgressLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 }
  return (e) => {
    if (order[e.level] < order[minLevel]) return
    const tag = e.level === 'info' ? '' : `${e.level}: `
    process.stderr.write(`${e.scope ? `[${e.scope}] ` : ''}${tag}${e.message}\n`)
  }
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : new Error('aborted')
}

/** Wait ms, or reject with the signal's reason as soon as it aborts (also when it already has). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((res, rej) => {
    if (signal?.aborted) return rej(signal.reason)
    if (ms <= 0) return res()
    const onAbort = () => (clearTimeout(t), rej(signal!.reason))
    const t = setTimeout(() => (signal?.removeEventListener('abort', onAbort), res()), ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

/** Run fn over items, at most `limit` at once, started in order of the items. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (t: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length)
  let next = 0
  const worker = async () => {
    for (let i = next++; i < items.length; i = next++) out[i] = await fn(items[i]!, i)
  }
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker))
  return out
}
