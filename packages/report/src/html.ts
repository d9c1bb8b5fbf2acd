/**
 * The drill report operators open in a browser: one self-contained HTML file (inline CSS and
 * SVG, no script, nothing fetched), the same bytes for the same result.
 */
import type { DrillResult, PhaseResult } from '@hafw/drill'
import { familyTexts, flowsOf, gapOf, ms, num, originOf, phasesOf, rel, yesNo } from './format.js'
import { chartFlows, esc, flowsSvg, phaseScale, timelineSvg } from './svg.js'

const CSS = `
:root{--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--pass:#1a7f37;--fail:#cf222e;--bg2:#f6f8fa}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,"DejaVu Sans",sans-serif;color:var(--fg);background:#fff}
main{max-width:1100px;margin:0 auto;padding:24px 28px 40px}
header{display:flex;align-items:center;gap:18px;border-bottom:1px solid var(--line);padding-bottom:14px}
h1{font-size:22px;margin:0}
h2{font-size:18px;margin:30px 0 10px;border-bottom:1px solid var(--line);padding-bottom:6px}
h3{font-size:14px;margin:18px 0 6px;color:var(--muted);text-transform:uppercase;letter-spacing:.04em}
.meta{color:var(--muted);margin:2px 0 0}
.badge{font-weight:700;font-size:20px;color:#fff;padding:8px 18px;border-radius:8px;letter-spacing:.06em}
.badge.pass{background:var(--pass)}.badge.fail{background:var(--fail)}
ul.reasons{margin:12px 0 0;padding-left:20px}
ul.reasons.fail li{color:var(--fail)}
.summary{margin:10px 0 0;font-size:15px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(140px,1fr));gap:10px}
.card{border:1px solid var(--line);border-radius:8px;padding:8px 12px;background:var(--bg2)}
.card .k{color:var(--muted);font-size:12px}
.card .v{font-size:20px;font-weight:600}
.card .s{color:var(--muted);font-size:12px}
.card.bad{border-color:var(--fail)}.card.bad .v{color:var(--fail)}
.card.good .v{color:var(--pass)}
table{border-collapse:collapse;font-size:12.5px;margin:6px 0}
th,td{border-bottom:1px solid var(--line);padding:3px 10px;text-align:left;white-space:nowrap}
th{background:var(--bg2)}
td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.reset td{color:var(--fail);font-weight:600}
.chart{display:block;max-width:100%;height:auto;margin:6px 0}
.chart text{font-family:system-ui,"DejaVu Sans",sans-serif;font-size:12px;fill:var(--fg)}
.chart .tick,.chart .axis-title,.chart .legend,.chart .empty{fill:var(--muted);font-size:11px}
.chart .axis{stroke:#8c959f;stroke-width:1;fill:none}
.chart .grid{stroke:#eaeef2;stroke-width:1}
.chart .row{stroke:#eaeef2;stroke-dasharray:2 3}
.chart .stripe{fill:#f6f8fa}
.chart .trigger{stroke:#24292f;stroke-width:2}
.chart .master-line{stroke:#0969da;stroke-width:1.5;stroke-dasharray:4 3}
.chart .ev-master-line{fill:#0969da}
.chart .band-commit{fill:#8250df;fill-opacity:.18}
.chart .band-gap{fill:#d4760a;fill-opacity:.16}
.chart .brk{fill:#fff;stroke:#d1d9e0;stroke-dasharray:2 2}
.chart .ev-name{font-weight:600}
.chart .ev-time,.chart .flow-label,.chart .flow-text{font-family:"DejaVu Sans Mono",ui-monospace,monospace;font-size:11px}
.chart .bad{fill:var(--fail);font-weight:600}
.chart circle{stroke:#fff;stroke-width:1.5}
.ev-trigger{fill:#24292f}.ev-master{fill:#0969da}.ev-commit{fill:#8250df}.ev-ok{fill:#1a7f37}.ev-bad{fill:#cf222e}.ev-other{fill:#6e7781}
.chart .bar{fill:#d4760a}.chart .bar-reset{fill:#cf222e}
.note{color:var(--muted)}
ul.notes li{margin:2px 0}
footer{margin-top:30px;color:var(--muted);font-size:12px}
`.trim()

function card(k: string, v: string, s = '', tone: '' | 'good' | 'bad' = ''): string {
  return `<div class="card${tone ? ` ${tone}` : ''}"><div class="k">${esc(k)}</div><div class="v">${esc(v)}</div>${s ? `<div class="s">${esc(s)}</div>` : ''}</div>`
}

function phaseCards(p: PhaseResult): string {
  const gap = num(p.gap_ms)
  const bound = num(p.bound_ms)
  const reset = num(p.flows?.reset) ?? 0
  return `<div class="cards">${[
    card('trigger to new master', ms(p.failover_ms), 'failover_ms'),
    card('worst data-plane gap', ms(gap), `bound ${ms(bound)}`, gap !== null && bound !== null ? (gap > bound ? 'bad' : 'good') : ''),
    card('state committed', num(p.commit?.entries) === null ? '-' : `${num(p.commit.entries)} entries`, num(p.commit?.ms) === null ? '' : `in ${ms(p.commit.ms)}`),
    card('flows kept', `${num(p.flows?.kept) ?? '-'} of ${num(p.flows?.total) ?? '-'}`, `${num(p.flows?.lost_messages) ?? 0} messages lost`),
    card('flows reset', String(reset), '', reset > 0 ? 'bad' : 'good'),
    ...familyTexts(p).map((f) => card(`${f.family} flows`, f.text, '', f.reset > 0 ? 'bad' : 'good')),
    card('converged after', yesNo(p.converged), 'verify', p.converged === false ? 'bad' : p.converged ? 'good' : ''),
  ].join('')}</div>`
}

function flowsTable(p: PhaseResult, t0: number): string {
  const flows = flowsOf(p)
  if (!flows.length) return '<p class="note">No witness flows.</p>'
  const head = ['flow', 'proto', 'path', 'target', 'sent', 'received', 'lost', 'worst gap', 'gap from', 'gap to', 'reset', 'error']
  const rows = flows.map((f) => {
    const g = gapOf(f)
    const cells: [string, boolean][] = [
      [`#${f.id}`, false],
      [f.proto, false],
      [f.path, false],
      [f.target, false],
      [String(num(f.sent) ?? '-'), true],
      [String(num(f.received) ?? '-'), true],
      [String(num(f.lost) ?? '-'), true],
      [ms(f.max_gap_ms), true],
      [g ? rel(g[0] - t0) : '-', true],
      [g ? rel(g[1] - t0) : '-', true],
      [f.reset ? 'RESET' : 'no', false],
      [f.error ?? '', false],
    ]
    return `<tr${f.reset ? ' class="reset"' : ''}>${cells.map(([v, n]) => `<td${n ? ' class="n"' : ''}>${esc(v)}</td>`).join('')}</tr>`
  })
  return `<table><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows.join('')}</tbody></table>`
}

function phaseSection(p: PhaseResult, r: DrillResult): string {
  const sc = phaseScale(p, r)
  const { shown, total } = chartFlows(p)
  const name = String(p.phase || 'phase')
  return [
    `<section class="phase"><h2>${esc(name.charAt(0).toUpperCase() + name.slice(1))}: ${esc(p.from)} &rarr; ${esc(p.to)}</h2>`,
    phaseCards(p),
    `<h3>Timeline</h3><p class="note">Trigger at ${esc(new Date(sc.t0).toISOString())}; times on the nodes' clocks, corrected by the offsets below.</p>`,
    timelineSvg(p, r, sc),
    `<h3>Witness flows: worst gap of each</h3>`,
    shown.length < total ? `<p class="note">Showing the ${shown.length} worst of ${total} flows; every flow is in the table below.</p>` : '',
    flowsSvg(p, sc),
    `<h3>Flows</h3>`,
    flowsTable(p, sc.t0),
    '</section>',
  ].join('\n')
}

export function renderHtml(result: DrillResult): string {
  const r = result
  const pass = r.verdict === 'pass'
  const phases = phasesOf(r)
  const fo = r.failover
  const summary = fo
    ? `New master after ${ms(fo.failover_ms)}; worst data-plane gap ${ms(fo.gap_ms)}; ${num(fo.flows?.reset) ?? 0} of ${num(fo.flows?.total) ?? 0} witness flows reset${r.failback ? `; failed back to ${r.failback.to} (gap ${ms(r.failback.gap_ms)}, ${num(r.failback.flows?.reset) ?? 0} reset)` : '; no failback'}.`
    : ''
  const offsets = Object.entries(r.clock_offsets_ms ?? {})
  const title = `Drill ${r.pair} ${r.mode}: ${pass ? 'PASS' : 'FAIL'}`
  return [
    '<!DOCTYPE html>',
    '<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    // Nothing may be fetched: a report is read offline, attached to tickets, archived.
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">`,
    `<title>${esc(title)}</title>`,
    `<style>${CSS}</style></head><body><main>`,
    `<header><div class="badge ${pass ? 'pass' : 'fail'}">${pass ? 'PASS' : 'FAIL'}</div><div>`,
    `<h1>Failover drill: ${esc(r.pair)} <span class="note">(${esc(r.mode)})</span></h1>`,
    `<p class="meta">site ${esc(r.site)} &middot; ${esc(r.kind)} pair &middot; witnesses: ${esc(r.witnesses)} &middot; ${esc(r.started_at)} &rarr; ${esc(r.ended_at)}</p>`,
    '</div></header>',
    summary ? `<p class="summary">${esc(summary)}</p>` : '',
    r.reasons?.length ? `<ul class="reasons ${pass ? 'pass' : 'fail'}">${r.reasons.map((x) => `<li>${esc(x)}</li>`).join('')}</ul>` : '',
    phases.map((p) => phaseSection(p, r)).join('\n'),
    '<section><h2>Notes</h2>',
    r.notes?.length ? `<ul class="notes">${r.notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul>` : '<p class="note">None.</p>',
    '<h3>Clock offsets (node &minus; controller)</h3>',
    offsets.length
      ? `<table><thead><tr><th>node</th><th>offset</th></tr></thead><tbody>${offsets.map(([n, v]) => `<tr><td>${esc(n)}</td><td class="n">${esc(`${(num(v) ?? 0) >= 0 ? '+' : ''}${ms(v)}`)}</td></tr>`).join('')}</tbody></table>`
      : '<p class="note">Not measured.</p>',
    '</section>',
    `<footer>hafw drill report &middot; id ${esc(r.id)}</footer>`,
    '</main></body></html>',
    '',
  ].join('\n')
}
