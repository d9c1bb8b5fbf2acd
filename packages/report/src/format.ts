/** Helpers the terminal table and the HTML report share, so both say the same thing. */
import type { DrillResult, FlowSummary, PhaseResult, TimelineEvent } from '@hafw/drill'

/** A finite number or null: reports are read back from disk, so never trust a field's type. */
export function num(v: unknown): number | null {
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN
  return Number.isFinite(n) ? n : null
}

/** "612 ms", "0.4 ms", "-" for unknown. Fixed formatting, never locale-dependent. */
export function ms(v: unknown): string {
  const n = num(v)
  if (n === null) return '-'
  return `${Math.abs(n) < 10 && !Number.isInteger(n) ? n.toFixed(1) : Math.round(n)} ms`
}

/** Offset from the trigger: "+612 ms", "-3 ms". */
export function rel(v: number): string {
  const r = Math.round(v)
  return `${r < 0 ? '-' : '+'}${Math.abs(r)} ms`
}

export const yesNo = (v: boolean | null | undefined): string => (v === true ? 'yes' : v === false ? 'no' : '-')

export function commitText(c: PhaseResult['commit'] | undefined): string {
  if (!c || (num(c.entries) === null && num(c.ms) === null)) return '-'
  return `${num(c.entries) ?? '?'} entries in ${ms(c.ms)}`
}

export function flowLabel(f: FlowSummary): string {
  return `#${f.id} ${f.proto} ${f.path} ${f.target}`
}

/** The phases present, failover first. */
export function phasesOf(r: DrillResult): PhaseResult[] {
  return [r.failover, r.failback].filter((p): p is PhaseResult => !!p && typeof p === 'object')
}

/** Time zero of a phase: its trigger, else its first event, else the drill's start. */
export function originOf(p: PhaseResult, r: DrillResult): number {
  const events = Array.isArray(p.timeline) ? p.timeline : []
  const trig = num(events.find((e) => e.event === 'trigger')?.t)
  if (trig !== null) return trig
  const ts = events.map((e) => num(e.t)).filter((t): t is number => t !== null)
  return ts.length ? Math.min(...ts) : num(Date.parse(r.started_at)) ?? 0
}

/** Events in time order (stable for equal times), dropping those without a usable time. */
export function sortedEvents(p: PhaseResult): TimelineEvent[] {
  const events = Array.isArray(p.timeline) ? p.timeline : []
  return events
    .map((e, i) => ({ e, i, t: num(e.t) }))
    .filter((x) => x.t !== null)
    .sort((a, b) => a.t! - b.t! || a.i - b.i)
    .map((x) => x.e)
}

export function flowsOf(p: PhaseResult): FlowSummary[] {
  return Array.isArray(p.per_flow) ? p.per_flow : []
}

/** A flow's worst gap as [start, end] epoch ms, or null when it never had one. */
export function gapOf(f: FlowSummary): [number, number] | null {
  const s = num(f.gap_start)
  const e = num(f.gap_end)
  if (s === null || e === null || s <= 0 || e < s) return null
  return [s, e]
}

/** The commit window of a phase as [start, end] epoch ms, from its events (or the duration). */
export function commitWindow(p: PhaseResult): [number, number] | null {
  const events = Array.isArray(p.timeline) ? p.timeline : []
  const end = num(events.find((e) => e.event === 'commit_finished')?.t)
  const start = num(events.find((e) => e.event === 'commit_started')?.t)
  if (end === null) return null
  const s = start ?? (num(p.commit?.ms) !== null ? end - num(p.commit.ms)! : null)
  return s === null || s > end ? null : [s, end]
}

/** The flow with the worst gap (first one on a tie). */
export function worstFlow(p: PhaseResult): FlowSummary | undefined {
  let best: FlowSummary | undefined
  for (const f of flowsOf(p)) if (gapOf(f) && (!best || (num(f.max_gap_ms) ?? 0) > (num(best.max_gap_ms) ?? 0))) best = f
  return best
}

export function phaseTitle(p: PhaseResult): string {
  const name = String(p.phase || 'phase')
  return `${name.charAt(0).toUpperCase()}${name.slice(1)}: ${p.from} -> ${p.to}`
}

/**
 * A dual-stack drill's flows per family ("IPv4 10/10 kept, 0 reset"), one entry per family
 * present; none for a single-family phase, whose totals say it all.
 */
export function familyTexts(p: PhaseResult): { family: 'IPv4' | 'IPv6'; text: string; reset: number }[] {
  const by = p.by_family
  if (!by?.ipv4 || !by.ipv6) return []
  return (['ipv4', 'ipv6'] as const).map((k) => {
    const f = by[k]!
    const reset = num(f.reset) ?? 0
    return { family: k === 'ipv4' ? 'IPv4' : 'IPv6', text: `${num(f.kept) ?? '-'}/${num(f.total) ?? '-'} kept, ${reset} reset`, reset }
  })
}
