import { resolve } from 'node:path'
import { HafwError, type Progress } from '@hafw/core'
import type { Model } from '@hafw/inventory'
import { JobQueue, registerOperation, type RolloutResult } from '@hafw/queue'
import { applyPair, inputName, redactPair, type ApplyInput, type ApplyOptions, type PairApplyResult } from './pair.js'

/**
 * The per-pair operation as the queue runs it (a `hosts:` entry is locked by its own name). A
 * transient fault (a node not reachable yet) is retried once; nothing was changed then.
 * Failures after a change are never transient.
 */
export const applyPairOp = registerOperation<ApplyInput, PairApplyResult>('apply.pair', applyPair, { pairOf: (i) => [inputName(i)], attempts: 2, backoffMs: 2000 })

export interface RolloutOptions extends ApplyOptions {
  /** only this pair, or this `hosts:` entry */
  pair?: string
  parallel?: number
  canary?: number
  /** stop scheduling new pairs at the first failure (default true) */
  stopOnFailure?: boolean
  rollback?: { to?: number }
}

export interface PairSummary {
  /** the pair's name, or the host's */
  pair: string
  result: 'applied' | 'no changes' | 'failed' | 'rolled back' | 'not started'
  ms: number | null
  /** per node: what changed, or what went wrong */
  detail: string
  outcome?: PairApplyResult
  error?: string
}

export interface ApplySummary {
  ok: boolean
  jobId: string | null
  pairs: PairSummary[]
  ms: number
}

/** One job input per pair, then per `hosts:` entry: its model and the options, no secrets. */
export function rolloutItems(model: Model, o: RolloutOptions): { pair: string; input: ApplyInput }[] {
  const pairs = o.pair ? model.pairs.filter((p) => p.name === o.pair) : model.pairs
  const hosts = o.pair ? (pairs.length ? [] : model.hosts.filter((h) => h.name === o.pair)) : model.hosts
  if (!pairs.length && !hosts.length) {
    const known = `pairs: ${model.pairs.map((p) => p.name).join(', ') || 'none'}; hosts: ${model.hosts.map((h) => h.name).join(', ') || 'none'}`
    throw new HafwError(o.pair ? `${model.source}: no pair or host named "${o.pair}" (${known})` : `${model.source}: no pairs and no hosts`)
  }
  const options: ApplyOptions = {
    ...(o.handover !== undefined ? { handover: o.handover } : {}),
    ...(o.confirmTimeoutS !== undefined ? { confirmTimeoutS: o.confirmTimeoutS } : {}),
    ...(o.acceptNew !== undefined ? { acceptNew: o.acceptNew } : {}),
    ...(o.earlyRollback !== undefined ? { earlyRollback: o.earlyRollback } : {}),
  }
  const common = { site: model.site, source: resolve(model.source), options, ...(o.rollback ? { rollback: o.rollback } : {}) }
  return [...pairs.map((p) => ({ pair: p.name, input: { ...common, pair: redactPair(p) } })), ...hosts.map((h) => ({ pair: h.name, input: { ...common, host: h } }))]
}

/** One line per node of a pair's outcome. */
export function describeOutcome(r: PairApplyResult): string {
  return r.nodes
    .map((n) => {
      if (n.result === 'unchanged') return `${n.node}: unchanged`
      const what = `${n.changed.length} file(s)${n.steps.length ? ` [${n.steps.join(' ')}]` : ''}`
      const gen = `gen ${n.previous ?? 'none'} -> ${n.generation ?? 'none'}`
      if (n.result === 'applied') return `${n.node}: ${what}, ${gen}`
      if (n.rollback) return `${n.node}: ${n.result} by ${n.rollback.trigger} (${gen})`
      return `${n.node}: ${n.result}${n.error ? `: ${n.error.split('\n')[0]}` : ''}`
    })
    .join('; ')
}

function summaryOf(pair: string, r: PairApplyResult | undefined, error?: string): PairSummary {
  if (!r) return { pair, result: error ? 'failed' : 'not started', ms: null, detail: error?.split('\n')[0] ?? '', ...(error ? { error } : {}) }
  const result: PairSummary['result'] = r.ok ? (r.noop ? 'no changes' : 'applied') : r.nodes.some((n) => n.rollback?.ok) ? 'rolled back' : 'failed'
  return { pair, result, ms: r.ms, detail: describeOutcome(r), outcome: r, ...(error ? { error } : {}) }
}

/**
 * `hafw apply`: every selected pair as one rollout on the job queue (canary pairs first, then
 * `parallel` at once, stop at the first failure). Without a listening worker this process runs
 * the jobs itself. Returns one summary line per pair whatever happened.
 */
export async function applyInventory(model: Model, o: RolloutOptions, progress: Progress, signal: AbortSignal): Promise<ApplySummary> {
  const t0 = Date.now()
  const items = rolloutItems(model, o)
  const q = await JobQueue.open()
  try {
    let rollout: RolloutResult | undefined
    let jobId: string | null = null
    try {
      const r = await q.rollout(
        { op: applyPairOp.name, items, canary: Math.min(o.canary ?? 0, items.length), parallel: o.parallel ?? 1, stopOnFailure: o.stopOnFailure ?? true },
        { progress, signal },
      )
      jobId = r.jobId
      if (!r.detached) rollout = r.result
    } catch (e) {
      const d = (e as { details?: unknown; jobId?: string }).details as RolloutResult | undefined
      if (!d?.pairs) throw e
      rollout = d
      jobId = (e as { jobId?: string }).jobId ?? null
    }
    const pairs: PairSummary[] = []
    for (const p of rollout!.pairs) {
      if (p.state === 'completed') pairs.push(summaryOf(p.pair, p.result as PairApplyResult))
      else if (p.state === 'failed') {
        // the pair job's own error carries its per-node outcome
        const f = (await q.show(p.jobId).catch(() => undefined))?.failure
        pairs.push(summaryOf(p.pair, f?.details as PairApplyResult | undefined, f?.message ?? p.error ?? 'failed'))
      } else pairs.push(summaryOf(p.pair, undefined))
    }
    return { ok: rollout!.ok, jobId, pairs, ms: Date.now() - t0 }
  } finally {
    await q.close()
  }
}

/** Plain aligned table: pair, result, duration, what changed. */
export function formatSummary(s: ApplySummary): string {
  const rows = s.pairs.map((p) => [p.pair, p.result, p.ms === null ? '-' : `${(p.ms / 1000).toFixed(1)}s`, p.detail])
  const head = ['PAIR', 'RESULT', 'TIME', 'WHAT CHANGED']
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]!))).join('  ')
  const failed = s.pairs.filter((p) => p.error)
  return [
    line(head),
    ...rows.map(line),
    ...failed.map((p) => `\n${p.pair}: ${p.error}`),
    `\n${s.pairs.filter((p) => p.result === 'applied').length} applied, ${s.pairs.filter((p) => p.result === 'no changes').length} unchanged, ${s.pairs.filter((p) => p.result === 'failed' || p.result === 'rolled back').length} failed, ${s.pairs.filter((p) => p.result === 'not started').length} not started in ${(s.ms / 1000).toFixed(1)} s`,
  ].join('\n')
}
