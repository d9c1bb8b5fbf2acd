/**
 * The two charts of a phase, as inline SVG on one shared time axis (ms from the trigger): the
 * timeline (one row per event) and the per-flow gaps (one row per witness flow).
 */
import type { DrillResult, FlowSummary, PhaseResult } from '@hafw/drill'
import { commitWindow, flowLabel, flowsOf, gapOf, ms, num, originOf, rel, sortedEvents, worstFlow } from './format.js'

/** Escape for HTML text and attribute values (also inside inline SVG); drops control characters. */
export function esc(v: unknown): string {
  return String(v ?? '')
    .replace(/[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/g, '\ufffd')
    .replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!)
}

/** A coordinate: always a finite number with at most one decimal, so output is stable. */
const c = (n: number) => String(Math.round((Number.isFinite(n) ? n : 0) * 10) / 10)

const W = 1040
const GUTTER = 250
const X0 = GUTTER
const X1 = W - 24
/** Longer texts are cut in the chart (the full text is in the tooltip and the tables). */
const cut = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}\u2026` : s)

export interface Scale {
  x(t: number): number
  ticks: { x: number; label: string }[]
  /** x of the axis break, when a long quiet stretch was compressed */
  brk: number | null
}

function nice(step: number): number {
  const p = 10 ** Math.floor(Math.log10(step))
  return [1, 2, 5, 10].map((m) => m * p).find((s) => s >= step)!
}

function tickLabel(t: number): string {
  if (t === 0) return '0'
  return Math.abs(t) >= 1000 && t % 1000 === 0 ? `${t < 0 ? '-' : '+'}${Math.abs(t) / 1000} s` : rel(t)
}

/**
 * A linear axis over the points (ms from trigger); when a quiet stretch after the action takes
 * most of it (e.g. "converged" seconds later), that stretch is cut out and marked as a break so
 * the failover itself stays readable. Nothing before keepUntil (the end of the action: new
 * master, commit, last gap) is ever cut: the time to fail over is what the drill measures.
 */
export function makeScale(points: number[], keepUntil = 0, x0 = X0, x1 = X1): Scale {
  const pts = [...new Set([0, ...points.filter(Number.isFinite)])].sort((a, b) => a - b)
  const lo = pts[0]!
  let hi = pts[pts.length - 1]!
  if (hi - lo < 1) hi = lo + 100
  const span = hi - lo
  let cutAt: [number, number] | null = null
  for (let i = 1; i < pts.length; i++) {
    const a = pts[i - 1]!
    const b = pts[i]!
    if (a > 0 && a >= keepUntil && b - a > 0.5 * span && (!cutAt || b - a > cutAt[1] - cutAt[0])) cutAt = [a, b]
  }
  const wd = x1 - x0
  let knots: [number, number][]
  let coreEnd: number
  if (!cutAt) {
    coreEnd = hi + span * 0.04
    knots = [[lo, x0], [coreEnd, x1]]
  } else {
    const [a, b] = cutAt
    coreEnd = a + (a - lo) * 0.08
    knots = [[lo, x0], [coreEnd, x0 + wd * 0.78], [b, x0 + wd * 0.87]]
    if (hi > b) knots.push([hi, x0 + wd * 0.97])
  }
  const x = (t: number) => {
    if (!Number.isFinite(t)) return x0
    if (t <= knots[0]![0]) return knots[0]![1]
    for (let i = 1; i < knots.length; i++) {
      const [d0, p0] = knots[i - 1]!
      const [d1, p1] = knots[i]!
      if (t <= d1) return p0 + ((t - d0) / (d1 - d0)) * (p1 - p0)
    }
    return knots[knots.length - 1]![1]
  }
  const step = nice((coreEnd - lo) / (cutAt ? 6 : 8))
  const ticks: Scale['ticks'] = []
  for (let t = Math.ceil(lo / step) * step; t <= coreEnd + 1e-9; t += step) ticks.push({ x: x(t), label: tickLabel(Math.round(t)) })
  if (cutAt) for (const t of new Set([cutAt[1], hi])) ticks.push({ x: x(t), label: rel(t) })
  return { x, ticks, brk: cutAt ? x0 + wd * 0.825 : null }
}

/** Events that belong to the failover itself; later ones (converged) may sit past a break. */
const ACTION = new Set(['trigger', 'standby_master', 'vips_moved', 'commit_started', 'commit_finished', 'first_packet'])

/** Every time a phase's charts must show, relative to its trigger. */
export function phaseScale(p: PhaseResult, r: DrillResult): { t0: number; scale: Scale } {
  const t0 = originOf(p, r)
  const events = sortedEvents(p)
  const points = events.map((e) => num(e.t)! - t0)
  let keep = 0
  for (const e of events) if (ACTION.has(e.event)) keep = Math.max(keep, num(e.t)! - t0)
  for (const f of flowsOf(p)) {
    const g = gapOf(f)
    if (g) points.push(g[0] - t0, g[1] - t0)
    if (g) keep = Math.max(keep, g[1] - t0)
  }
  return { t0, scale: makeScale(points, keep) }
}

function axis(s: Scale, top: number, bottom: number): string {
  const parts = [`<line class="axis" x1="${X0}" y1="${top}" x2="${X1}" y2="${top}"/>`]
  for (const t of s.ticks) {
    parts.push(`<line class="grid" x1="${c(t.x)}" y1="${top}" x2="${c(t.x)}" y2="${bottom}"/>`)
    parts.push(`<text class="tick" x="${c(t.x)}" y="${top - 6}" text-anchor="middle">${esc(t.label)}</text>`)
  }
  if (s.brk !== null) {
    // The usual "//" mark of a broken axis, and a band saying time was left out.
    parts.push(`<rect class="brk" x="${c(s.brk - 9)}" y="${top}" width="18" height="${bottom - top}"/>`)
    parts.push(`<path class="axis" d="M${c(s.brk - 7)} ${top + 5}l6 -10M${c(s.brk + 1)} ${top + 5}l6 -10"/>`)
  }
  return parts.join('')
}

/** Bands shared by both charts: commit window and the worst gap. */
function bands(p: PhaseResult, t0: number, s: Scale, top: number, bottom: number, withGap: boolean): string {
  const out: string[] = []
  const band = (cls: string, a: number, b: number, title: string) => {
    const xa = s.x(a - t0)
    const w = Math.max(2, s.x(b - t0) - xa)
    out.push(`<rect class="${cls}" x="${c(xa)}" y="${top}" width="${c(w)}" height="${bottom - top}"><title>${esc(title)}</title></rect>`)
  }
  const cw = commitWindow(p)
  if (cw) band('band-commit', cw[0], cw[1], `commit window ${rel(cw[0] - t0)} .. ${rel(cw[1] - t0)} (${ms(cw[1] - cw[0])})`)
  const wf = worstFlow(p)
  const g = wf && gapOf(wf)
  if (withGap && wf && g) band('band-gap', g[0], g[1], `worst data-plane gap: ${ms(wf.max_gap_ms)}, flow ${flowLabel(wf)}`)
  const x = s.x(0)
  out.push(`<line class="trigger" x1="${c(x)}" y1="${top}" x2="${c(x)}" y2="${bottom}"/>`)
  return out.join('')
}

function legend(items: [string, string][], y: number): string {
  let x = X0
  return items
    .map(([cls, label]) => {
      const s = `<rect class="${cls}" x="${x}" y="${y - 9}" width="14" height="10"/><text class="legend" x="${x + 19}" y="${y}">${esc(label)}</text>`
      x += 30 + label.length * 6.4
      return s
    })
    .join('')
}

const EVENT_CLASS: Record<string, string> = {
  trigger: 'ev-trigger',
  standby_master: 'ev-master',
  vips_moved: 'ev-master',
  commit_started: 'ev-commit',
  commit_finished: 'ev-commit',
  first_packet: 'ev-ok',
  converged: 'ev-ok',
}

export function timelineSvg(p: PhaseResult, r: DrillResult, { t0, scale }: { t0: number; scale: Scale }): string {
  const events = sortedEvents(p)
  const ROW = 24
  const top = 34
  const bottom = top + 8 + Math.max(1, events.length) * ROW
  const height = bottom + 30
  const rows = events.map((e, i) => {
    const y = top + 8 + i * ROW + ROW / 2
    const t = num(e.t)! - t0
    const x = scale.x(t)
    let cls = EVENT_CLASS[e.event] ?? 'ev-other'
    if (e.event === 'converged' && p.converged === false) cls = 'ev-bad'
    const text = `${rel(t)}${e.detail ? `  ${cut(String(e.detail), 64)}` : ''}`
    // Labels run right of the marker unless that would leave the chart.
    const right = x + 10 + text.length * 6.6 < W
    return [
      `<g><title>${esc(`${e.event} on ${e.node} at ${rel(t)}${e.detail ? `: ${e.detail}` : ''}`)}</title>`,
      `<line class="row" x1="${X0}" y1="${c(y)}" x2="${X1}" y2="${c(y)}"/>`,
      `<text class="ev-label" x="${X0 - 12}" y="${c(y + 4)}" text-anchor="end"><tspan class="ev-name">${esc(cut(e.event, 22))}</tspan> · ${esc(cut(e.node, 14))}</text>`,
      `<circle class="${cls}" cx="${c(x)}" cy="${c(y)}" r="6"/>`,
      `<text class="ev-time" x="${c(right ? x + 10 : x - 10)}" y="${c(y + 4)}" text-anchor="${right ? 'start' : 'end'}">${esc(text)}</text></g>`,
    ].join('')
  })
  const wf = worstFlow(p)
  const legendItems: [string, string][] = [['band-commit', `commit window (${ms(p.commit?.ms)})`]]
  if (wf) legendItems.push(['band-gap', `worst data-plane gap (${ms(wf.max_gap_ms)}, flow #${wf.id})`])
  if (scale.brk !== null) legendItems.push(['brk', 'quiet time left out'])
  return [
    `<svg class="chart" viewBox="0 0 ${W} ${height}" width="${W}" height="${height}" role="img" aria-label="${esc(`${p.phase} timeline`)}">`,
    `<text class="axis-title" x="${X0 - 12}" y="${top - 6}" text-anchor="end">ms from trigger</text>`,
    bands(p, t0, scale, top, bottom, true),
    axis(scale, top, bottom),
    events.length ? rows.join('') : `<text class="empty" x="${X0 + 10}" y="${top + 24}">no events recorded</text>`,
    legend(legendItems, height - 8),
    '</svg>',
  ].join('')
}

/** More rows than this and the chart shows the worst flows only; the table has them all. */
export const MAX_FLOW_ROWS = 60

export function chartFlows(p: PhaseResult): { shown: FlowSummary[]; total: number } {
  const all = flowsOf(p)
  if (all.length <= MAX_FLOW_ROWS) return { shown: all, total: all.length }
  const worst = [...all].sort((a, b) => Number(b.reset) - Number(a.reset) || (num(b.max_gap_ms) ?? 0) - (num(a.max_gap_ms) ?? 0) || (num(a.id) ?? 0) - (num(b.id) ?? 0))
  const keep = new Set(worst.slice(0, MAX_FLOW_ROWS))
  return { shown: all.filter((f) => keep.has(f)), total: all.length }
}

export function flowsSvg(p: PhaseResult, { t0, scale }: { t0: number; scale: Scale }): string {
  const { shown } = chartFlows(p)
  const ROW = 17
  const top = 34
  const bottom = top + 6 + Math.max(1, shown.length) * ROW
  const height = bottom + 30
  const rows = shown.map((f, i) => {
    const y = top + 6 + i * ROW
    const g = gapOf(f)
    const cls = f.reset ? 'bar-reset' : 'bar'
    const label = `<text class="flow-label${f.reset ? ' bad' : ''}" x="${X0 - 12}" y="${y + 12}" text-anchor="end">${esc(cut(flowLabel(f), 38))}</text>`
    const stripe = i % 2 ? `<rect class="stripe" x="${X0}" y="${y}" width="${X1 - X0}" height="${ROW}"/>` : ''
    const lost = num(f.lost) ?? 0
    const text = `${ms(f.max_gap_ms)}${f.reset ? ' RESET' : ''}${lost ? ` · ${lost} lost` : ''}`
    if (!g) {
      return `${stripe}${label}<text class="flow-text${f.reset ? ' bad' : ''}" x="${X0 + 6}" y="${y + 12}">${esc(f.reset ? 'RESET, no gap recorded' : 'no gap recorded')}</text>`
    }
    const xa = scale.x(g[0] - t0)
    const xb = Math.max(xa + 3, scale.x(g[1] - t0))
    const right = xb + 8 + text.length * 6.4 < X1
    const title = `${flowLabel(f)}: worst gap ${ms(f.max_gap_ms)} from ${rel(g[0] - t0)} to ${rel(g[1] - t0)}${f.reset ? ', RESET' : ''}${f.error ? ` (${f.error})` : ''}`
    return [
      stripe,
      label,
      `<g><title>${esc(title)}</title><rect class="${cls}" x="${c(xa)}" y="${y + 3}" width="${c(xb - xa)}" height="${ROW - 6}" rx="2"/>`,
      `<text class="flow-text${f.reset ? ' bad' : ''}" x="${c(right ? xb + 6 : xa - 6)}" y="${y + 12}" text-anchor="${right ? 'start' : 'end'}">${esc(text)}</text></g>`,
    ].join('')
  })
  const master = sortedEvents(p).find((e) => e.event === 'standby_master')
  const mx = master ? scale.x(num(master.t)! - t0) : null
  const items: [string, string][] = [['bar', 'worst gap of a flow kept'], ['bar-reset', 'flow reset'], ['band-commit', 'commit window']]
  if (mx !== null) items.push(['ev-master-line', 'new master'])
  return [
    `<svg class="chart" viewBox="0 0 ${W} ${height}" width="${W}" height="${height}" role="img" aria-label="${esc(`${p.phase} per-flow gaps`)}">`,
    `<text class="axis-title" x="${X0 - 12}" y="${top - 6}" text-anchor="end">flow (worst gap)</text>`,
    bands(p, t0, scale, top, bottom, false),
    axis(scale, top, bottom),
    shown.length ? rows.join('') : `<text class="empty" x="${X0 + 10}" y="${top + 20}">no witness flows</text>`,
    mx !== null ? `<line class="master-line" x1="${c(mx)}" y1="${top}" x2="${c(mx)}" y2="${bottom}"/>` : '',
    legend(items, height - 8),
    '</svg>',
  ].join('')
}
