/** The terminal view of a drill: verdict, one column per phase, the timelines, reset flows, notes. */
import type { DrillResult, PhaseResult } from '@hafw/drill'
import { commitText, familyTexts, flowLabel, flowsOf, ms, num, originOf, phasesOf, rel, sortedEvents, yesNo } from './format.js'

export interface TableOptions {
  /** ANSI colour; the CLI turns it on only for a TTY without NO_COLOR. */
  color?: boolean
}

/** Control characters from a node's output must not drive the operator's terminal. */
function clean(v: unknown): string {
  return String(v ?? '').replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => (c === '\n' || c === '\t' ? ' ' : '?'))
}

function columns(rows: string[][], indent = ''): string {
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)))
  return rows.map((r) => indent + r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]!))).join('  ').trimEnd()).join('\n')
}

export function renderTable(result: DrillResult, opts: TableOptions = {}): string {
  const paint = (code: string, s: string) => (opts.color ? `\x1b[${code}m${s}\x1b[0m` : s)
  const phases = phasesOf(result)
  const pass = result.verdict === 'pass'
  const out: string[] = []

  out.push(paint('1', `Drill ${clean(result.id)}`))
  out.push(
    columns([
      ['pair', `${clean(result.pair)} (site ${clean(result.site)}, ${clean(result.kind)})`],
      ['mode', `${clean(result.mode)}, witnesses: ${clean(result.witnesses)}`],
      ['time', `${clean(result.started_at)} .. ${clean(result.ended_at)}`],
      ['verdict', paint(pass ? '1;32' : '1;31', pass ? 'PASS' : 'FAIL')],
    ]),
  )
  for (const r of result.reasons ?? []) out.push(`         - ${clean(r)}`)

  const resetCell = (p: PhaseResult) => {
    const n = num(p.flows?.reset) ?? 0
    return n > 0 ? paint('31', String(n)) : String(n)
  }
  const rows: [string, (p: PhaseResult) => string][] = [
    ['nodes', (p) => `${clean(p.from)} -> ${clean(p.to)}`],
    ['failover_ms', (p) => ms(p.failover_ms)],
    ['gap_ms', (p) => `${ms(p.gap_ms)} (bound ${ms(p.bound_ms)})`],
    ['commit', (p) => commitText(p.commit)],
    ['flows kept', (p) => `${num(p.flows?.kept) ?? '-'}/${num(p.flows?.total) ?? '-'}`],
    ['flows reset', resetCell],
    ['lost messages', (p) => String(num(p.flows?.lost_messages) ?? '-')],
    ['converged', (p) => (p.converged === false ? paint('31', 'no') : yesNo(p.converged))],
  ]
  // dual-stack witnesses: each family's flows on its own row, right after the totals
  if (phases.some((p) => familyTexts(p).length)) {
    const cell = (family: string) => (p: PhaseResult) => {
      const f = familyTexts(p).find((x) => x.family === family)
      return !f ? '-' : f.reset > 0 ? paint('31', f.text) : f.text
    }
    rows.splice(rows.findIndex(([label]) => label === 'flows reset') + 1, 0, ...['IPv4', 'IPv6'].map((f): [string, (p: PhaseResult) => string] => [`${f} flows`, cell(f)]))
  }
  if (phases.length) {
    out.push('')
    // Colour codes take no room on screen: align on the text without them.
    const painted = rows.map(([label, cell]) => [label, ...phases.map(cell)])
    const plain = painted.map((r) => r.map((c) => c.replace(/\x1b\[[0-9;]*m/g, '')))
    const head = ['', ...phases.map((p) => clean(p.phase))]
    const w = [head, ...plain].reduce<number[]>((acc, r) => r.map((c, i) => Math.max(acc[i] ?? 0, c.length)), [])
    const line = (r: string[], vis: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c + ' '.repeat(w[i]! - vis[i]!.length))).join('  ').trimEnd()
    out.push(paint('1', line(head, head)))
    painted.forEach((r, i) => out.push(line(r, plain[i]!)))
  }

  for (const p of phases) {
    const t0 = originOf(p, result)
    const events = sortedEvents(p)
    out.push('', paint('1', `${clean(p.phase)} timeline (from trigger at ${new Date(t0).toISOString()})`))
    if (!events.length) out.push('  (no events)')
    else out.push(columns(events.map((e) => [rel(num(e.t)! - t0), clean(e.event), clean(e.node), clean(e.detail ?? '')]), '  '))
    const reset = flowsOf(p).filter((f) => f.reset)
    if (reset.length) {
      out.push(paint('31', `  reset flows (${reset.length}):`))
      for (const f of reset.slice(0, 10)) out.push(`    ${clean(flowLabel(f))}${f.error ? `: ${clean(f.error)}` : ''}`)
      if (reset.length > 10) out.push(`    ... and ${reset.length - 10} more (hafw reports show ID --json)`)
    }
  }

  if (result.notes?.length) {
    out.push('', paint('1', 'notes'))
    for (const n of result.notes) out.push(`  - ${clean(n)}`)
  }
  const offsets = Object.entries(result.clock_offsets_ms ?? {})
  if (offsets.length) {
    out.push('', `clock offsets (node - controller): ${offsets.map(([n, v]) => `${clean(n)} ${(num(v) ?? 0) >= 0 ? '+' : ''}${ms(v)}`).join(', ')}`)
  }
  return out.join('\n') + '\n'
}
