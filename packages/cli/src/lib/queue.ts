import type { JobQueue } from '@hafw/queue'
import './operations.js'

/** Open the configured queue (REDIS_URL, Sentinel or the embedded server), run fn, close. */
export async function withQueue<T>(fn: (q: JobQueue) => Promise<T>): Promise<T> {
  // bullmq only when a queue is used: `reports list` imports this module for table().
  const { JobQueue } = await import('@hafw/queue')
  const q = await JobQueue.open()
  try {
    return await fn(q)
  } finally {
    await q.close()
  }
}

/**
 * An AbortSignal for Ctrl-C / SIGTERM while a command waits for its job: the first signal
 * cancels the job (the command then exits with the job's "cancelled" error, 130); a second one
 * exits at once.
 */
export function interruptSignal(): AbortSignal {
  const ac = new AbortController()
  const on = (sig: NodeJS.Signals) => {
    if (ac.signal.aborted) process.exit(130)
    process.stderr.write(`${sig}: cancelling the job (again to quit without waiting)\n`)
    ac.abort(new Error(sig))
  }
  process.on('SIGINT', on)
  process.on('SIGTERM', on)
  return ac.signal
}

/** Plain aligned columns for terminals. */
export function table(head: string[], rows: string[][]): string {
  const all = [head, ...rows]
  const w = head.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)))
  return all.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]!))).join('  ').trimEnd()).join('\n')
}

export function ago(iso?: string): string {
  if (!iso) return '-'
  const s = Math.round((Date.now() - Date.parse(iso)) / 1000)
  return s < 90 ? `${s}s ago` : s < 5400 ? `${Math.round(s / 60)}m ago` : s < 129600 ? `${Math.round(s / 3600)}h ago` : `${Math.round(s / 86400)}d ago`
}

export const duration = (ms?: number) => (ms === undefined ? '-' : ms < 1000 ? `${ms}ms` : ms < 120_000 ? `${(ms / 1000).toFixed(1)}s` : `${Math.round(ms / 60000)}m`)
