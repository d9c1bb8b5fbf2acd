import { describe, expect, it } from 'vitest'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { exec } from '@hafw/core'
import { loadInventory, type Model, type PairModel } from '@hafw/inventory'
import { renderInventory, type RenderedNode } from '@hafw/render'
import { describeNode, formatPlan, orderSteps, parseAddrs, parseRead, planNode, readScript, summarize, unifiedDiff, type NodeState } from '@hafw/plan'
import {
  confirmScript, decideOrder, describeOutcome, expectedMaster, parseSample, redactPair, rollbackScript, rolloutItems, sampleScript, stageScript, stagedPath, stepLine, swapScript, vrrpProblems,
} from '@hafw/apply'

/*
 * The pure parts of plan and apply: diffs, plan decisions, the order of nodes, the VRRP
 * verdict of the health gate, and the shell scripts sent to nodes (parsed by a real sh -n,
 * and the read script run for real against local files).
 */

const model: Model = await loadInventory('inventory/lab.yaml')
const edge1 = model.pairs.find((p) => p.name === 'edge1')!
const fw1a = renderInventory(model, { pair: 'edge1', node: 'fw1a' })[0]!

const emptyState = (): NodeState => ({ files: {}, generation: null, generations: [], confirmed: [], recorded: null, live: { ruleset: '', routes: '', rules: '' }, units: {}, addr: '' })
/** The state a node has right after applying n (units running, live state recorded). */
function appliedState(n: RenderedNode): NodeState {
  const st = emptyState()
  for (const f of n.files) st.files[f.path] = { path: f.path, exists: true, content: f.content, mode: String(parseInt(f.mode, 8).toString(8)), owner: f.owner }
  st.generation = 4
  st.generations = [1, 2, 3, 4]
  st.live = { ruleset: '*filter\n-A INPUT -j ACCEPT\n', routes: '192.168.12.0/24 via 192.168.11.50 dev ens4\n', rules: '0: from all lookup local\n' }
  st.recorded = { ...st.live }
  for (const u of ['hafw-firewall.service', 'hafw-routing.service', 'conntrackd.service', 'keepalived.service']) st.units[u] = { enabled: 'enabled', active: 'active' }
  return st
}
const addr = (dev: string, ...ips: string[]) => ips.map((ip, i) => `${i + 2}: ${dev}    inet ${ip}/24 brd 192.168.10.255 scope global ${dev}\\       valid_lft forever preferred_lft forever`).join('\n')

describe('plan', () => {
  it('unified diff: plain diff -u headers, context lines, nothing for equal texts', () => {
    const d = unifiedDiff('/etc/x.conf', 'a\nb\nc\n', 'a\nB\nc\n')
    expect(d.split('\n').slice(0, 2)).toEqual(['--- a/etc/x.conf', '+++ b/etc/x.conf'])
    expect(d).toContain('-b\n+B')
    expect(unifiedDiff('/x', 'same\n', 'same\n')).toBe('')
  })

  it('a fresh node: every file created, every service action, units enabled and started', () => {
    const p = planNode(fw1a, emptyState())
    expect(p.files.every((f) => f.change === 'create')).toBe(true)
    expect(p.files.length).toBe(fw1a.files.length)
    expect(p.steps.map((s) => `${s.service}/${s.action}`)).toEqual(['systemd/reload', 'firewall/run', 'sysctl/run', 'routing/run', 'conntrackd/restart', 'keepalived/reload'])
    expect(p.enable).toContain('conntrackd.service')
    expect(p.start).toContain('keepalived.service')
    expect(p.drift).toBeNull()
    expect(p.changes).toBe(true)
  })

  it('an unchanged node: no changes, no steps, no drift (re-apply is a no-op)', () => {
    const p = planNode(fw1a, appliedState(fw1a))
    expect(p).toMatchObject({ files: [], steps: [], enable: [], start: [], drift: [], changes: false, unchanged: fw1a.files.length })
    expect(describeNode(p)).toBe('no changes')
    expect(summarize([p]).changes).toBe(false)
  })

  it('a changed VIP changes keepalived.conf and the ruleset: keepalived reload and a firewall run, nothing else', () => {
    const m2: Model = JSON.parse(JSON.stringify(model))
    m2.pairs[0]!.vrrp.instances[0]!.vips.push({ ...m2.pairs[0]!.vrrp.instances[0]!.vips[1]!, ip: '192.168.10.61', cidr: '192.168.10.61/24' })
    const after = renderInventory(m2, { pair: 'edge1', node: 'fw1a' })[0]!
    const p = planNode(after, appliedState(fw1a))
    expect(p.files.map((f) => f.path).sort()).toEqual(['/etc/iptables/rules.v4', '/etc/keepalived/keepalived.conf'])
    expect(p.steps.map((s) => `${s.service}/${s.action}`)).toEqual(['firewall/run', 'keepalived/reload'])
    expect(p.files.find((f) => f.path.endsWith('keepalived.conf'))!.diff).toMatch(/^\+\s+192\.168\.10\.61\/24/m)
    expect(formatPlan([p])).toMatch(/plan: 1\/1 node\(s\) change, 2 file\(s\), 2 service action\(s\)/)
  })

  it('restart wins over reload; a file whose action is none runs nothing', () => {
    const cmds = (s: string, a: string) => [s, a]
    const steps = orderSteps(
      [
        { service: 'keepalived', action: 'reload', because: 'a' },
        { service: 'keepalived', action: 'restart', because: 'b' },
        { service: 'keepalived', action: 'none', because: 'c' },
        { service: 'systemd', action: 'reload', because: 'd' },
      ],
      cmds as never,
    )
    expect(steps.map((s) => `${s.service}/${s.action}`)).toEqual(['systemd/reload', 'keepalived/restart'])
    expect(steps[1]!.because).toEqual(['a', 'b'])
  })

  it('mode or owner drift alone is a metadata change without service actions', () => {
    const st = appliedState(fw1a)
    st.files['/usr/local/sbin/hafw-notify']!.mode = '700'
    const p = planNode(fw1a, st)
    expect(p.files).toMatchObject([{ path: '/usr/local/sbin/hafw-notify', change: 'metadata', from: { mode: '700' }, mode: '0755' }])
    expect(p.steps).toEqual([])
  })

  it('drift of the live ruleset is shown and repaired by the firewall loader; route drift by the routing script', () => {
    const st = appliedState(fw1a)
    st.live.ruleset += '-A INPUT -s 10.9.9.9/32 -j DROP\n'
    st.live.routes = ''
    const p = planNode(fw1a, st)
    expect(p.drift!.map((d) => d.kind)).toEqual(['ruleset', 'routes'])
    expect(p.drift![0]!.diff).toContain('+-A INPUT -s 10.9.9.9/32 -j DROP')
    expect(p.steps.map((s) => `${s.service}/${s.action}:${s.because.join(',')}`)).toEqual(['firewall/run:drift in ruleset', 'routing/run:drift in routes'])
  })

  it('the read script runs in sh and its output parses back (files, absent files, addresses)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hafw-read-'))
    try {
      writeFileSync(join(dir, 'a.conf'), 'line 1\nünïcode\n', { mode: 0o640 })
      const r = await exec('sh', ['-s'], { input: readScript([join(dir, 'a.conf'), join(dir, 'missing')], [], 'iptables'), allowFail: true })
      const st = parseRead(r.stdout)
      expect(st.files[join(dir, 'a.conf')]).toMatchObject({ exists: true, content: 'line 1\nünïcode\n', mode: '640' })
      expect(st.files[join(dir, 'missing')]).toMatchObject({ exists: false })
      expect(st.generation).toBeNull()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
    expect(() => parseRead('garbage')).toThrow(/cut short/)
  })
})

describe('apply: ordering and the VRRP verdict', () => {
  const both = ['fw1a', 'fw1b']
  it('standby first: the node not holding the VIPs goes first', () => {
    const d = decideOrder(edge1, { fw1a: addr('ens3', '192.168.10.11'), fw1b: addr('ens3', '192.168.10.12', '192.168.10.10', '192.168.10.60') + '\n' + addr('ens4', '192.168.11.10') }, both, false)
    expect(d).toMatchObject({ order: ['fw1a', 'fw1b'], active: 'fw1b', handover: false })
  })
  it('fresh pair: lowest priority first; handover only when the active node changes', () => {
    expect(decideOrder(edge1, {}, both, true)).toMatchObject({ order: ['fw1b', 'fw1a'], active: null, handover: false })
    const active = { fw1a: addr('ens3', '192.168.10.11', '192.168.10.10', '192.168.10.60') + '\n' + addr('ens4', '192.168.11.10') }
    expect(decideOrder(edge1, active, both, true)).toMatchObject({ order: ['fw1b', 'fw1a'], active: 'fw1a', handover: true })
    expect(decideOrder(edge1, active, ['fw1b'], true)).toMatchObject({ order: ['fw1b'], handover: false })
  })
  it('split brain refuses to roll out', () => {
    const vip = addr('ens3', '192.168.10.10')
    expect(() => decideOrder(edge1, { fw1a: vip, fw1b: vip }, both, false)).toThrow(/split brain/)
  })
  it('exactly one holder per instance; preemption decides who; partial holders only count once updated', () => {
    const full = [...parseAddrs(addr('ens3', '192.168.10.10', '192.168.10.60')), ...parseAddrs(addr('ens4', '192.168.11.10'))]
    expect(vrrpProblems(edge1, { fw1a: full, fw1b: [] }, both)).toEqual([])
    expect(vrrpProblems(edge1, { fw1a: [], fw1b: [] }, both)[0]).toMatch(/no node holds/)
    expect(vrrpProblems(edge1, { fw1a: full, fw1b: full }, both)[0]).toMatch(/split brain/)
    // fw1a (priority 150) preempts: fw1b holding the VIPs is not settled yet
    expect(vrrpProblems(edge1, { fw1a: [], fw1b: full }, both)[0]).toMatch(/fw1a .* has not taken over/)
    expect(vrrpProblems(edge1, { fw1a: [], fw1b: full }, ['fw1b'])).toEqual([])
    expect(expectedMaster({ ...edge1, vrrp: { ...edge1.vrrp, nopreempt: true } }, both)).toBeNull()
    const partial = full.filter((a) => a.ip !== '192.168.10.60')
    expect(vrrpProblems(edge1, { fw1a: partial, fw1b: [] }, both, ['fw1a'])[0]).toMatch(/only some/)
    expect(vrrpProblems(edge1, { fw1a: partial, fw1b: [] }, both, ['fw1b'])).toEqual([])
  })
  it('gate samples parse: units, addresses, conntrackd sync counters', () => {
    const out = `@@unit keepalived.service active\n@@unit conntrackd.service failed\n@@addr\n${addr('ens3', '192.168.10.10')}\n@@ct\ncache internal:\n UDP traffic (active device=ens5):\n         4800 Bytes sent         1200 Bytes recv\n           40 Pckts sent           12 Pckts recv\n            0 Error send            0 Error recv\n@@ct-ok\n@@end\n`
    expect(parseSample(out)).toMatchObject({ units: { 'keepalived.service': 'active', 'conntrackd.service': 'failed' }, ips: [{ device: 'ens3', ip: '192.168.10.10' }], conntrackd: true, syncRecv: 12, syncSent: 40 })
    expect(parseSample('@@unit x.service inactive\n@@addr\n@@end\n')).toMatchObject({ conntrackd: null, syncRecv: null })
  })
})

describe('apply: scripts sent to nodes', () => {
  const p = planNode(fw1a, emptyState())
  const common = { gen: 7, prev: 6, backend: 'iptables' as const, changes: p.files }
  const scripts = {
    stage: stageScript({ ...common, files: fw1a.files, manifestJson: '{}', rollback: '#!/bin/sh\n' }),
    swap: swapScript({ gen: 7, confirmTimeoutS: 60, changes: p.files, steps: p.steps, enable: p.enable, start: p.start }),
    rollback: rollbackScript({ ...common, steps: p.steps, enable: p.enable, start: p.start }),
    confirm: confirmScript(7, 'iptables'),
    sample: sampleScript(['keepalived.service'], true),
  }
  it.each(Object.keys(scripts))('%s script passes sh -n', async (k) => {
    const r = await exec('sh', ['-n'], { input: scripts[k as keyof typeof scripts], allowFail: true })
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
  })
  it('the rollback timer is armed before the first rename, with sub-second accuracy', () => {
    const s = scripts.swap
    expect(s.indexOf('systemd-run')).toBeLessThan(s.indexOf('mv -f'))
    expect(s).toMatch(/--on-active=60 --timer-property=AccuracySec=100ms --unit=hafw-rollback-7/)
  })
  it('staged files sit next to their target and never end in .conf', () => {
    expect(stagedPath('/etc/sysctl.d/90-hafw.conf', 3)).toBe('/etc/sysctl.d/.90-hafw.conf.hafw-3')
  })
  it('a reload of a stopped unit starts it', () => {
    expect(stepLine({ command: ['systemctl', 'reload', 'keepalived.service'] })).toBe('if systemctl is-active -q keepalived.service; then systemctl reload keepalived.service; else systemctl start keepalived.service; fi')
    expect(stepLine({ command: ['/usr/local/sbin/hafw-firewall'] })).toBe('/usr/local/sbin/hafw-firewall')
  })
  it('rollback stops what the generation started, restores the saved ruleset when no loader existed before', () => {
    expect(scripts.rollback).toMatch(/systemctl stop .*keepalived\.service/)
    expect(scripts.rollback).toContain('iptables-restore < "$G/7"/ruleset.save')
    expect(scripts.rollback.indexOf('systemctl stop')).toBeLessThan(scripts.rollback.indexOf('mv -f'))
  })
})

describe('apply: job input', () => {
  it('carries the pair model and options, not the VRRP password', () => {
    const m: Model = JSON.parse(JSON.stringify(model))
    m.pairs[0]!.vrrp.auth = { type: 'PASS', password: 's3cret' }
    const items = rolloutItems(m, { confirmTimeoutS: 30 })
    expect(items.map((i) => i.pair)).toEqual(['edge1', 'lb1'])
    expect(JSON.stringify(items)).not.toContain('s3cret')
    expect(items[0]!.input).toMatchObject({ site: 'lab', options: { confirmTimeoutS: 30 } })
    expect(JSON.parse(JSON.stringify(items))).toEqual(items)
    expect(redactPair(edge1)).toBe(edge1)
    expect(() => rolloutItems(m, { pair: 'nope' })).toThrow(/no pair named "nope"/)
  })
  it('describes outcomes per node', () => {
    const pair: PairModel = edge1
    const s = describeOutcome({
      pair: pair.name, ok: true, noop: false, order: [], why: '', handover: false, master: 'fw1a', ms: 1,
      nodes: [
        { node: 'fw1a', role: 'active', result: 'applied', previous: 3, generation: 4, changed: ['/a', '/b'], steps: ['keepalived/reload'], ms: 1 },
        { node: 'fw1b', role: 'standby', result: 'unchanged', previous: 3, generation: 3, changed: [], steps: [], ms: 0 },
      ],
    })
    expect(s).toBe('fw1a: 2 file(s) [keepalived/reload], gen 3 -> 4; fw1b: unchanged')
  })
})
