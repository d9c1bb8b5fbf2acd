import { reporter, type Progress } from '@hafw/core'
import type { Model, PairModel } from '@hafw/inventory'
import { type PairHealth, type Problem, type Role, type SyncHealth, rolesByNode } from './health.js'
import { SessionPool } from './pool.js'
import { PairSamples, probePair, selectPairs, settleLiveness } from './verify.js'

/*
 * `hafw status`: each pair at a glance from one probe per node (no dumps): roles per instance,
 * who holds the VIPs, the sync link, and the caches' sizes (the active's internal cache against
 * the standby's external cache: equal when the standby holds everything the active syncs).
 * A Watcher keeps the sessions and judges the sync link over the time since its last refresh.
 */

export interface PairStatus {
  pair: string
  kind: PairModel['kind']
  /** healthy: no problem (counts are not entry-level: `hafw verify` proves convergence) */
  ok: boolean
  active: string | null
  standby: string | null
  /** node -> VRRP instance -> role */
  roles: Record<string, Record<string, Role>>
  vips: { instance: string; vip: string; holders: string[] }[]
  sync: Record<string, SyncHealth> | null
  counts: { activeKernel: number | null; activeInternal: number | null; standbyExternal: number | null }
  /** the active's internal cache and the standby's external cache hold as many entries; null without sync or without an active node */
  inSync: boolean | null
  problems: Problem[]
  /** when the probe ended (ms) */
  t: number
}

export class StatusWatcher {
  private readonly pool: SessionPool
  private readonly pairs: PairModel[]
  private readonly samples = new Map<string, PairSamples>()
  private readonly last = new Map<string, PairHealth>()

  constructor(
    private readonly model: Model,
    opts: { pairs?: string[]; acceptNew?: boolean },
    private readonly progress: Progress,
    private readonly signal: AbortSignal,
  ) {
    this.pairs = selectPairs(model, opts.pairs)
    this.pool = new SessionPool(model, { acceptNew: opts.acceptNew ?? false, progress, signal })
  }

  /** Probe every pair once (8 at a time). */
  async refresh(): Promise<PairStatus[]> {
    const out: PairStatus[] = new Array(this.pairs.length)
    let next = 0
    const worker = async () => {
      for (let i = next++; i < this.pairs.length; i = next++) out[i] = await this.one(this.pairs[i]!)
    }
    await Promise.all(Array.from({ length: Math.min(8, this.pairs.length) }, worker))
    return out
  }

  private async one(pair: PairModel): Promise<PairStatus> {
    let s = this.samples.get(pair.name)
    if (!s) this.samples.set(pair.name, (s = new PairSamples(pair)))
    // a sliding window: nodes that were heard from (or whose conntrackd restarted) start a new
    // one; silent ones keep theirs, so their silence keeps growing
    const prev = this.last.get(pair.name)
    if (prev?.sync) s.rebase(Object.entries(prev.sync).filter(([, h]) => h.liveness === 'alive' || h.rxPackets === null).map(([n]) => n))
    let h = await probePair(this.pool, this.model, pair, s, this.signal)
    h = await settleLiveness(this.pool, this.model, pair, s, h, this.signal)
    this.last.set(pair.name, h)
    const activeSync = h.active ? h.sync?.[h.active] : undefined
    const standbySync = h.standby ? h.sync?.[h.standby] : undefined
    const counts = {
      activeKernel: h.active ? (s.probe(h.active)?.kernelEntries ?? null) : null,
      activeInternal: activeSync?.internal ?? null,
      standbyExternal: standbySync?.external ?? null,
    }
    const st: PairStatus = {
      pair: pair.name,
      kind: pair.kind,
      ok: h.problems.length === 0,
      active: h.active,
      standby: h.standby,
      roles: rolesByNode(h),
      vips: h.instances.flatMap((i) => i.vips.map((v) => ({ instance: i.instance, ...v }))),
      sync: h.sync,
      counts,
      inSync: !pair.conntrack_sync || !h.active ? null : counts.activeInternal !== null && counts.activeInternal === counts.standbyExternal,
      problems: h.problems,
      t: Date.now(),
    }
    reporter(this.progress, pair.name).debug(`${st.ok ? 'ok' : `${st.problems.length} problem(s)`}, active ${st.active ?? 'none'}`)
    return st
  }

  close(): Promise<void> {
    return this.pool.close()
  }
}

/** One status of the selected pairs. */
export async function pairStatus(model: Model, opts: { pairs?: string[]; acceptNew?: boolean }, progress: Progress, signal: AbortSignal): Promise<PairStatus[]> {
  const w = new StatusWatcher(model, opts, progress, signal)
  try {
    return await w.refresh()
  } finally {
    await w.close()
  }
}

const ROLE_SHORT: Record<Role, string> = { MASTER: 'MASTER', BACKUP: 'BACKUP', FAULT: 'FAULT', STOPPED: 'STOPPED', UNKNOWN: '?' }

/** Aligned columns: one line per pair, then its problems indented. */
export function formatStatus(rows: PairStatus[]): string {
  const head = ['PAIR', 'ACTIVE', 'ROLES', 'VIPS', 'SYNC', 'CACHES', 'HEALTH']
  const body = rows.map((r) => {
    const roles = Object.entries(r.roles)
      .map(([node, inst]) => `${node} ${Object.values(inst).map((x) => ROLE_SHORT[x]).join(',')}`)
      .join('  ')
    const holders = [...new Set(r.vips.flatMap((v) => v.holders))]
    const vips = r.vips.some((v) => v.holders.length > 1) ? `SPLIT ${holders.join('+')}` : holders.length ? holders.join('+') : 'none'
    const sync = !r.sync
      ? '-'
      : Object.entries(r.sync)
          .map(([n, h]) => `${n} ${!h.running ? 'STOPPED' : h.link && h.link !== 'RUNNING' ? h.link : h.liveness === 'silent' ? 'SILENT' : h.liveness === 'alive' ? `ok rx+${h.rxPackets}` : 'ok'}`)
          .join('  ')
    const c = r.counts
    const caches = r.inSync === null ? (r.sync ? 'no active' : '-') : `${c.activeInternal ?? '?'} ${r.inSync ? '=' : '!='} ${c.standbyExternal ?? '?'}`
    const health = r.ok ? 'ok' : [...new Set(r.problems.map((p) => p.kind))].join(',')
    return [r.pair, r.active ?? '-', roles, vips, sync, caches, health]
  })
  const all = [head, ...body]
  const w = head.map((_, i) => Math.max(...all.map((x) => x[i]!.length)))
  const lines: string[] = []
  all.forEach((x, k) => {
    lines.push(x.map((c, i) => (i === x.length - 1 ? c : c.padEnd(w[i]!))).join('  '))
    if (k > 0) for (const p of rows[k - 1]!.problems) lines.push(`    ${p.kind}: ${p.message}`)
  })
  return lines.join('\n')
}
