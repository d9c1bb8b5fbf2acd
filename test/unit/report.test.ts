import { describe, expect, it } from 'vitest'
import { readFileSync } from 'node:fs'
import type { DrillResult, FlowSummary, PhaseResult } from '@hafw/drill'
import { makeScale, MAX_FLOW_ROWS, renderHtml, renderTable } from '@hafw/report'

const load = (name: string) => JSON.parse(readFileSync(`test/fixtures/drill/${name}.json`, 'utf8')) as DrillResult
const PASS = load('edge1-graceful-pass')
const FAIL = load('edge1-crash-sync-blocked')
const trigger = (p: PhaseResult) => p.timeline.find((e) => e.event === 'trigger')!.t
const count = (s: string, sub: string | RegExp) => s.split(sub).length - 1

const HOSTILE = `<script>alert("x")</script>"><img src=x onerror=alert(1)>&amp;'\x1b[31m`

/** Every element the report may contain: anything else got in through a string. */
const ALLOWED_TAGS = new Set(['html', 'head', 'meta', 'title', 'style', 'body', 'main', 'header', 'div', 'h1', 'h2', 'h3', 'p', 'span', 'ul', 'li', 'section', 'table', 'thead', 'tbody', 'tr', 'th', 'td', 'footer', 'svg', 'g', 'line', 'rect', 'circle', 'path', 'text', 'tspan'])
const VOID = new Set(['meta'])

/** Tag names used, and whether every element is closed in order (the document is well formed). */
function structure(html: string): { tags: Set<string>; balanced: boolean } {
  const tags = new Set<string>()
  const stack: string[] = []
  let balanced = true
  const body = html.replace(/<style>[\s\S]*?<\/style>/, '<style></style>').replace(/^<!DOCTYPE html>/, '')
  for (const m of body.matchAll(/<(\/?)([a-zA-Z][a-zA-Z0-9]*)\b[^>]*?(\/?)>/g)) {
    const [, close, name, self] = m
    tags.add(name!.toLowerCase())
    if (self || VOID.has(name!)) continue
    if (!close) stack.push(name!)
    else if (stack.pop() !== name) balanced = false
  }
  return { tags, balanced: balanced && stack.length === 0 }
}

function hostile(r: DrillResult): DrillResult {
  const x = structuredClone(r)
  x.pair = HOSTILE
  x.site = HOSTILE
  x.reasons = [HOSTILE]
  x.notes = [HOSTILE]
  x.clock_offsets_ms = { [HOSTILE]: 1.5 }
  for (const p of [x.failover, x.failback!]) {
    p.from = HOSTILE
    p.phase = HOSTILE
    p.timeline[1]!.node = HOSTILE
    p.timeline[1]!.detail = HOSTILE
    p.timeline[2]!.event = HOSTILE
    p.per_flow[0]!.target = HOSTILE
    p.per_flow[0]!.path = HOSTILE
    p.per_flow[0]!.error = HOSTILE
    // a number field holding a string must neither crash nor reach the markup
    ;(p.timeline[3] as unknown as { t: string }).t = HOSTILE
    ;(p.per_flow[1] as unknown as { max_gap_ms: string }).max_gap_ms = HOSTILE
  }
  return x
}

describe('renderTable', () => {
  const out = renderTable(PASS)

  it('a dual-stack drill shows each family on its own row; a single-family one does not', () => {
    expect(out).not.toMatch(/IPv[46] flows/)
    const ds = structuredClone(PASS)
    const fam = (total: number, reset: number) => ({ total, kept: total - reset, reset, lost_messages: 0, gap_ms: 12 })
    ds.failover.by_family = { ipv4: fam(10, 0), ipv6: fam(10, 0) }
    ds.failback!.by_family = { ipv4: fam(12, 0), ipv6: fam(8, 2) }
    const t = renderTable(ds)
    const row = (label: string) => t.split('\n').find((l) => l.startsWith(label + ' '))!
    expect(row('IPv4 flows')).toMatch(/^IPv4 flows +10\/10 kept, 0 reset +12\/12 kept, 0 reset$/)
    expect(row('IPv6 flows')).toMatch(/^IPv6 flows +10\/10 kept, 0 reset +6\/8 kept, 2 reset$/)
    // the family rows stand right after the totals
    const lines = t.split('\n')
    expect(lines.findIndex((l) => l.startsWith('IPv4 flows '))).toBe(lines.findIndex((l) => l.startsWith('flows reset ')) + 1)
    const html = renderHtml(ds)
    expect(html).toContain('<div class="k">IPv6 flows</div><div class="v">6/8 kept, 2 reset</div>')
    expect(html).toContain('<div class="card good"><div class="k">IPv4 flows</div>')
  })

  it('leads with the verdict and its reasons', () => {
    expect(out).toMatch(/^verdict +PASS$/m)
    for (const r of PASS.reasons) expect(out).toContain(`- ${r}`)
    expect(out).toMatch(/^mode +graceful, witnesses: probes$/m)
    expect(out).toMatch(/^pair +edge1 \(site lab, firewall\)$/m)
  })

  it('has one column per phase with failover_ms, gap_ms, commit, flows and converged', () => {
    const row = (label: string) => out.split('\n').find((l) => l.startsWith(label + ' '))!
    expect(out).toMatch(/^ +failover +failback$/m)
    const fo = PASS.failover
    const fb = PASS.failback!
    expect(row('nodes')).toMatch(new RegExp(`${fo.from} -> ${fo.to} +${fb.from} -> ${fb.to}`))
    expect(row('failover_ms')).toMatch(new RegExp(`^failover_ms +${fo.failover_ms} ms +${fb.failover_ms} ms$`))
    expect(row('gap_ms')).toContain(`${fo.gap_ms} ms (bound ${fo.bound_ms} ms)`)
    expect(row('gap_ms')).toContain(`${fb.gap_ms} ms (bound ${fb.bound_ms} ms)`)
    expect(row('commit')).toContain(`${fo.commit.entries} entries in ${fo.commit.ms} ms`)
    expect(row('flows kept')).toMatch(new RegExp(`${fo.flows.kept}/${fo.flows.total} +${fb.flows.kept}/${fb.flows.total}$`))
    expect(row('flows reset')).toMatch(/^flows reset +0 +0$/)
    expect(row('lost messages')).toMatch(new RegExp(`${fo.flows.lost_messages} +${fb.flows.lost_messages}$`))
    expect(row('converged')).toMatch(/^converged +yes +yes$/)
  })

  it('prints each timeline relative to its trigger, with node names, in time order', () => {
    for (const p of [PASS.failover, PASS.failback!]) {
      const t0 = trigger(p)
      const lines = out.split('\n')
      const at = p.timeline.map((e) => lines.findIndex((l) => new RegExp(`^  \\+${e.t - t0} ms +${e.event} +${e.node} +`).test(l) && (l.includes(e.detail ?? '') || !e.detail)))
      expect(at.every((i) => i > 0)).toBe(true)
      expect([...at].sort((a, b) => a - b)).toEqual(at)
    }
  })

  it('ends with notes and clock offsets', () => {
    for (const n of PASS.notes) expect(out).toContain(`  - ${n}`)
    expect(out).toMatch(/^clock offsets \(node - controller\): fw1a \+0\.4 ms, fw1b -0\.9 ms$/m)
  })

  it('is plain text unless colour is asked for, and colour does not move a column', () => {
    expect(out).not.toContain('\x1b')
    const coloured = renderTable(FAIL, { color: true })
    expect(coloured).toContain('\x1b[1;31mFAIL\x1b[0m')
    expect(coloured.replace(/\x1b\[[0-9;]*m/g, '')).toBe(renderTable(FAIL))
  })

  it('lists reset flows and shows a single column without failback', () => {
    const t = renderTable(FAIL)
    expect(t).toMatch(/^verdict +FAIL$/m)
    expect(t).toMatch(/^ +failover$/m)
    expect(t).not.toMatch(/failback timeline/)
    expect(t).toMatch(/^converged +no$/m)
    expect(t).toContain('  reset flows (10):')
    expect(t).toContain('    #0 tcp dnat 192.168.10.60:25: read ECONNRESET')
  })

  it('never passes control characters from a result to the terminal', () => {
    const t = renderTable(hostile(PASS))
    expect(t).not.toContain('\x1b')
    expect(t).toContain('<script>alert("x")</script>') // plain text: shown as written
  })
})

describe('renderHtml', () => {
  const html = renderHtml(PASS)

  it('is one self-contained, well-formed document', () => {
    expect(html.startsWith('<!DOCTYPE html>')).toBe(true)
    const { tags, balanced } = structure(html)
    expect(balanced).toBe(true)
    expect([...tags].filter((t) => !ALLOWED_TAGS.has(t))).toEqual([])
    expect(count(html, '<style>')).toBe(1)
    // nothing to fetch: no script, no link, no URL, no external reference of any kind
    expect(html).not.toMatch(/<script|<link|<img|<iframe|https?:|url\(|src=|href=|@import/i)
    expect(html).toContain(`Content-Security-Policy" content="default-src 'none'`)
  })

  it('has the verdict badge, reasons, key figures and notes', () => {
    expect(html).toContain('<div class="badge pass">PASS</div>')
    for (const r of PASS.reasons) expect(html).toContain(`<li>${r}</li>`)
    for (const n of PASS.notes) expect(html).toContain(`<li>${n}</li>`)
    expect(html).toContain(`<div class="v">${PASS.failover.failover_ms} ms</div>`)
    expect(html).toContain(`<div class="v">${PASS.gap_ms} ms</div><div class="s">bound ${PASS.failover.bound_ms} ms</div>`)
    expect(html).toContain(`<div class="v">${PASS.commit.entries} entries</div><div class="s">in ${PASS.commit.ms} ms</div>`)
    expect(html).toMatch(/<td>fw1a<\/td><td class="n">\+0\.4 ms<\/td>/)
    expect(renderHtml(FAIL)).toContain('<div class="badge fail">FAIL</div>')
  })

  it('draws a timeline and a per-flow chart per phase as inline SVG', () => {
    expect(count(html, '<section class="phase">')).toBe(2)
    expect(count(html, '<svg ')).toBe(4)
    expect(count(html, '<circle ')).toBe(PASS.failover.timeline.length + PASS.failback!.timeline.length)
    // one gap bar per flow, the commit window as a band in every chart, the worst gap in the timelines
    expect(count(html, /<rect class="bar" [^>]*rx=/)).toBe(PASS.failover.per_flow.length + PASS.failback!.per_flow.length)
    expect(count(html, /<rect class="band-commit" [^>]*><title>/)).toBe(4)
    expect(count(html, /<rect class="band-gap" [^>]*><title>/)).toBe(2)
    for (const e of PASS.failover.timeline) expect(html).toContain(`<tspan class="ev-name">${e.event}</tspan> · ${e.node}</text>`)
    // every coordinate is a finite number inside the drawing
    for (const m of html.matchAll(/ (?:x|cx|x1|x2)="([^"]*)"/g)) {
      const v = Number(m[1])
      expect(Number.isFinite(v) && v >= 0 && v <= 1040).toBe(true)
    }
  })

  it('puts events and gaps where they happened on the axis', () => {
    // commit window band of the failover timeline starts at commit_started and ends at commit_finished
    const svg = html.split('<svg ')[1]!
    const marker = (event: string) => Number(new RegExp(`ev-name">${event}</tspan>[^]*?<circle class="[^"]+" cx="([^"]+)"`).exec(svg)![1])
    const x0 = marker('trigger')
    expect(marker('standby_master')).toBeGreaterThan(x0 + 300)
    expect(marker('commit_finished')).toBeGreaterThan(marker('commit_started'))
    const band = /<rect class="band-commit" x="([^"]+)" y="[^"]+" width="([^"]+)"/.exec(svg)!
    expect(Math.abs(Number(band[1]) - marker('commit_started'))).toBeLessThan(0.2)
    expect(Math.abs(Number(band[1]) + Number(band[2]) - marker('commit_finished'))).toBeLessThan(0.2)
  })

  it('marks reset flows in red and drops failback when there was none', () => {
    const f = renderHtml(FAIL)
    expect(count(f, '<section class="phase">')).toBe(1)
    expect(count(f, /<rect class="bar-reset" [^>]*rx=/)).toBe(FAIL.failover.per_flow.filter((x) => x.reset).length)
    expect(count(f, '<tr class="reset">')).toBe(10)
    expect(count(f, '<text class="flow-label bad"')).toBe(10)
  })

  it('escapes every string from the result', () => {
    const h = renderHtml(hostile(PASS))
    const { tags, balanced } = structure(h)
    expect(balanced).toBe(true)
    expect([...tags].filter((t) => !ALLOWED_TAGS.has(t))).toEqual([])
    expect(h).not.toMatch(/<script|<img|\x1b/)
    expect(h).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&quot;&gt;&lt;img src=x onerror=alert(1)&gt;&amp;amp;&#39;')
    // attribute values never contain a raw quote or angle bracket
    for (const m of h.matchAll(/<[a-zA-Z][^>]*>/g)) expect(m[0]).not.toMatch(/="[^"]*[<>][^"]*"/)
  })

  it('is deterministic', () => {
    expect(renderHtml(structuredClone(PASS))).toBe(html)
    expect(renderHtml(PASS)).toBe(html)
  })

  it('charts the worst flows only when there are many; the table keeps them all', () => {
    const big = structuredClone(PASS)
    const base = big.failover.per_flow[0]!
    big.failover.per_flow = Array.from({ length: 200 }, (_, i): FlowSummary => ({ ...base, id: i, max_gap_ms: 80 + (i % 37), gap_end: base.gap_start + 80 + (i % 37), reset: i % 50 === 7 }))
    const h = renderHtml(big)
    const first = h.split('<section class="phase">')[1]!
    expect(first).toContain(`Showing the ${MAX_FLOW_ROWS} worst of 200 flows`)
    expect(count(first, /<rect class="bar[^>]*rx=/)).toBe(MAX_FLOW_ROWS)
    expect(count(first, /<rect class="bar-reset" [^>]*rx=/)).toBe(4)
    expect(count(first, /<tr(?: class="reset")?><td>#/)).toBe(200)
  })

  it('carries the notes of a load-balancer pair', () => {
    const lb = structuredClone(PASS)
    lb.kind = 'loadbalancer'
    lb.notes = ['IPVS is not in this kernel: only the VRRP part of the load-balancer pair was drilled']
    expect(renderHtml(lb)).toContain('loadbalancer pair')
    expect(renderHtml(lb)).toContain(`<li>${lb.notes[0]}</li>`)
    expect(renderTable(lb)).toContain(`  - ${lb.notes[0]}`)
  })
})

describe('time axis', () => {
  it('compresses a quiet stretch after the action, never the wait for the new master', () => {
    // graceful: action ends ~720 ms, converged at 2850 ms
    const g = makeScale([0, 598, 612, 639, 722, 2850], 722)
    expect(g.brk).not.toBeNull()
    expect(g.x(722)).toBeLessThan(g.brk!)
    expect(g.x(2850)).toBeGreaterThan(g.brk!)
    expect(g.x(722) - g.x(598)).toBeGreaterThan(80) // the gap itself stays wide
    // crash: gaps start at +40 ms but nothing happens until the new master at +3611 ms
    const c = makeScale([0, 40, 55, 3611, 3700, 6200], 3700)
    expect(c.brk).toBeNull()
    expect((c.x(3611) - c.x(0)) / (c.x(6200) - c.x(0))).toBeCloseTo(3611 / 6200, 1)
    for (const s of [g, c]) {
      const xs = [0, 100, 600, 700, 2000, 2850, 6200].map(s.x)
      expect([...xs].sort((a, b) => a - b)).toEqual(xs)
      expect(s.ticks.length).toBeGreaterThan(3)
    }
  })
})
