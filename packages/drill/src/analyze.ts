import type { FlowResult, WitnessResult } from './witness.js'
import type { ByFamily, FamilyFlows, FlowSummary, PhaseResult } from './types.js'

/*
 * Pure: the witnesses' record cut into phases, and the verdict. A phase runs from its trigger to
 * the next phase's trigger (or the end of the witnesses); a flow's gap belongs to the phase it
 * overlaps, a reset and a lost message to the phase they happened in. Every count is also kept
 * per IP family (`by_family`), so a dual-stack drill shows IPv4 and IPv6 flows apart.
 */

export interface PhaseWindow {
  /** controller ms */
  start: number
  end: number
  /** when the VIPs appeared on the node taking over (controller ms), if they did */
  takeover: number | null
}

export interface PhaseFlows {
  per_flow: FlowSummary[]
  flows: PhaseResult['flows']
  /** the counts per IP family of the flows (only the families present) */
  byFamily: ByFamily
  /**
   * The data plane's gap: the worst stall of a UDP witness (a fixed rate, so its stall is the
   * path's outage), or of a TCP witness when there is no UDP one. A TCP flow stalls up to one
   * retransmission timeout longer than the path (its timer doubles while the path is down):
   * that is `tcpGap`, reported, not judged against the VRRP bound.
   */
  gap_ms: number | null
  tcpGap: number | null
  /** flows still stalled when the phase ended */
  stuck: FlowSummary[]
  /** first echo after a stall across the takeover, and the last such flow's recovery */
  firstPacket: number | null
  allFlowing: number | null
  /** flows that stalled across the takeover */
  stalled: number
  /** the witness's own stalls (CPU) in the phase: the flows' gaps they explain are not counted */
  selfStalls: { count: number; worstMs: number }
}

function inside(t: number, w: PhaseWindow) {
  return t >= w.start && t < w.end
}

/**
 * A flow's gap that one of the witness's own stalls explains: it lies within the stall, give or
 * take the interval the last echo before it and the first after it may be apart from its edges.
 * A path outage is longer than any stall it overlaps and is kept whole.
 */
export function explainedByWitnessStall(g: { start: number; end: number }, stalls: readonly { start: number; end: number }[], intervalMs: number): boolean {
  const slack = 2 * intervalMs
  return stalls.some((s) => g.start >= s.start - slack && g.end <= s.end + slack)
}

const worstOf = (fs: FlowSummary[]) => (fs.length ? Math.max(...fs.map((f) => f.max_gap_ms)) : null)

/** A flow's IP family: recorded by the witness, else read from its target ("[fd00::1]:25" is IPv6). */
export function flowFamily(f: { family?: 4 | 6; target: string }): 4 | 6 {
  return f.family ?? (f.target.startsWith('[') ? 6 : 4)
}

/**
 * A phase's counts of some of its flows: kept (neither reset nor stalled for good: `stuck` are
 * the flows still stalled at its end) and the data plane's gap (UDP's worst stall, else TCP's).
 */
function countFlows(flows: FlowSummary[], stuck: FlowSummary[]): FamilyFlows {
  const alive = flows.filter((f) => !f.reset)
  const udp = alive.filter((f) => f.proto === 'udp')
  return {
    total: flows.length,
    kept: alive.length - stuck.filter((f) => flows.includes(f)).length,
    reset: flows.length - alive.length,
    lost_messages: flows.reduce((a, f) => a + f.lost, 0),
    gap_ms: udp.length ? worstOf(udp) : worstOf(alive.filter((f) => f.proto === 'tcp')),
  }
}

/** The counts per family of a phase's flows (only the families present). */
export function countByFamily(perFlow: FlowSummary[], stuck: FlowSummary[] = []): ByFamily {
  const out: ByFamily = {}
  for (const fam of [4, 6] as const) {
    const mine = perFlow.filter((f) => flowFamily(f) === fam)
    if (mine.length) out[fam === 4 ? 'ipv4' : 'ipv6'] = countFlows(mine, stuck)
  }
  return out
}

export function phaseFlows(w: WitnessResult, win: PhaseWindow): PhaseFlows {
  const per_flow: FlowSummary[] = []
  const ends: number[] = []
  const stuck: FlowSummary[] = []
  // The witness closes a still-open gap at its last send (older records: ~0.5 s before endedAt).
  const phaseEnd = Math.min(win.end, w.sendEndedAt ?? w.endedAt - 1000)
  for (const f of w.flows) {
    // Reset in an earlier phase: not a witness of this one.
    if (f.reset && (f.resetAt ?? 0) < win.start && f.resetAt !== undefined) continue
    const gaps = (f.gaps ?? []).filter((g) => g.end > win.start && g.start < win.end && !explainedByWitnessStall(g, w.stalls ?? [], w.intervalMs))
    const worst = gaps.reduce<{ start: number; end: number } | undefined>((a, g) => (!a || g.end - g.start > a.end - a.start ? g : a), undefined)
    const reset = f.reset && (f.resetAt === undefined || inside(f.resetAt, win))
    const lost = (f.lostAt ?? []).filter((t) => inside(t, win)).length
    if (win.takeover !== null) {
      const across = gaps.filter((g) => g.start <= win.takeover! && g.end >= win.takeover!)
      if (across.length) ends.push(Math.min(...across.map((g) => g.end)))
    }
    const s = summary(f, worst, reset, lost, w.intervalMs)
    per_flow.push(s)
    // Still silent when the phase ended, for over a second by then: its gap is open at the end.
    // A gap that closed before the end (a TCP flow back with a late retransmission just before
    // the next trigger) is a stall, not a stuck flow.
    if (!reset && gaps.some((g) => g.start < phaseEnd && g.end >= phaseEnd && phaseEnd - g.start > 1000)) stuck.push(s)
  }
  const { gap_ms, ...flows } = countFlows(per_flow, stuck)
  const mine = (w.stalls ?? []).filter((s) => s.end > win.start && s.start < win.end)
  return {
    per_flow,
    flows,
    byFamily: countByFamily(per_flow, stuck),
    gap_ms,
    tcpGap: worstOf(per_flow.filter((f) => !f.reset && f.proto === 'tcp')),
    stuck,
    firstPacket: ends.length ? Math.min(...ends) : null,
    allFlowing: ends.length ? Math.max(...ends) : null,
    stalled: ends.length,
    selfStalls: { count: mine.length, worstMs: mine.reduce((m, s) => Math.max(m, s.end - s.start), 0) },
  }
}

/** A flow in a phase. Without a stall of 1.5 x the interval, its gap is the interval itself. */
function summary(f: FlowResult, worst: { start: number; end: number } | undefined, reset: boolean, lost: number, intervalMs: number): FlowSummary {
  const s: FlowSummary = {
    id: f.id,
    proto: f.proto,
    family: flowFamily(f),
    path: f.path,
    target: f.target,
    sent: f.sent,
    received: f.received,
    lost,
    max_gap_ms: worst ? worst.end - worst.start : intervalMs,
    gap_start: worst?.start ?? 0,
    gap_end: worst?.end ?? 0,
    reset,
  }
  if (reset && f.error) s.error = f.error
  else if (reset) s.error = 'closed by the peer'
  return s
}

export interface PhaseVerdictInput {
  phase: PhaseResult
  /** the mode's fault should have moved the VIPs */
  expectTakeover: boolean
  takeover: boolean
  /** what verify said after the phase (null: not run) */
  verify: { ok: boolean; detail: string } | null
  /** the bound's derivation, for the notes */
  boundWhy: string
  measured: 'probes' | 'live-flows' | 'none'
  /** flows still stalled when the phase ended */
  stuck: FlowSummary[]
}

/**
 * "IPv4 0 of 10, IPv6 0 of 10" (or "IPv4 120 ms, IPv6 95 ms") for a phase with IPv6 witnesses;
 * "" for an IPv4-only one, whose reasons read as they always did.
 */
function perFamily(ph: PhaseResult, what: 'reset' | 'gap'): string {
  const by = ph.by_family ?? countByFamily(ph.per_flow)
  if (!by.ipv6) return ''
  return (['ipv4', 'ipv6'] as const)
    .filter((k) => by[k])
    .map((k) => {
      const c = by[k]!
      const name = k === 'ipv4' ? 'IPv4' : 'IPv6'
      return what === 'reset' ? `${name} ${c.reset} of ${c.total}` : `${name} ${c.gap_ms === null ? '-' : `${c.gap_ms} ms`}`
    })
    .join(', ')
}
const paren = (s: string) => (s ? ` (${s})` : '')

/** pass only if no witness flow was reset, every gap is within its bound and verify passed after every phase. */
export function judge(phases: PhaseVerdictInput[], final: { ok: boolean; detail: string } | null): { verdict: 'pass' | 'fail'; reasons: string[] } {
  const fails: string[] = []
  const oks: string[] = []
  const names = phases.map((p) => p.phase.phase).join(' and ')
  for (const p of phases) {
    const ph = p.phase
    if (p.expectTakeover && !p.takeover) fails.push(`${ph.phase}: ${ph.to} did not take the VIPs over`)
    if (ph.flows.reset > 0) {
      const paths = [...new Set(ph.per_flow.filter((f) => f.reset).map((f) => `${f.proto.toUpperCase()} ${f.path} ${f.target}`))]
      fails.push(`${ph.flows.reset} of ${ph.flows.total}${paren(perFamily(ph, 'reset'))} witness flows were reset during ${ph.phase} (${paths.join(', ')})`)
    }
    if (ph.gap_ms !== null && ph.gap_ms > ph.bound_ms) {
      const worst = ph.per_flow.find((f) => !f.reset && f.max_gap_ms === ph.gap_ms)
      fails.push(`worst data-plane gap ${ph.gap_ms} ms during ${ph.phase} exceeds the bound of ${ph.bound_ms} ms${worst ? ` (flow #${worst.id} ${worst.proto} ${worst.path} ${worst.target})` : ''}`)
    }
    if (p.stuck.length) fails.push(`${p.stuck.length} witness flows had not recovered when ${ph.phase} ended (${[...new Set(p.stuck.map((f) => `${f.proto.toUpperCase()} ${f.path} ${f.target}`))].join(', ')})`)
    if (p.verify && !p.verify.ok) fails.push(`verify failed after ${ph.phase}: ${p.verify.detail}`)
  }
  if (final && !final.ok) fails.push(`verify failed after the drill (fault cleared): ${final.detail}`)
  const total = phases[0]?.phase.flows.total ?? 0
  const measured = phases[0]?.measured ?? 'none'
  if (!fails.length) {
    if (measured === 'none') oks.push('no witness traffic: the verdict covers VRRP and state sync only')
    else {
      // e.g. "(0 of 20: IPv4 0 of 10, IPv6 0 of 10; failover)"
      const fam = phases[0] ? perFamily(phases[0].phase, 'reset') : ''
      oks.push(`no witness flow was reset (0 of ${total}${fam ? `: ${fam};` : ','} ${names})`)
    }
    const gaps = phases.filter((p) => p.phase.gap_ms !== null)
    if (gaps.length) oks.push(gaps.map((p) => `worst data-plane gap ${p.phase.gap_ms} ms${paren(perFamily(p.phase, 'gap'))} during ${p.phase.phase} is within the bound of ${p.phase.bound_ms} ms`).join('; '))
    else if (measured === 'live-flows') oks.push('data-plane gap not measured: live flows as witnesses show survival, not timing')
    const verified = phases.filter((p) => p.verify).map((p) => `after ${p.phase.phase}`)
    if (final) verified.push('after the fault was cleared')
    if (verified.length) oks.push(`verify passed ${verified.join(', ')}`)
  }
  return fails.length ? { verdict: 'fail', reasons: fails } : { verdict: 'pass', reasons: oks }
}
