import { describe, expect, it } from 'vitest'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { exec } from '@hafw/core'
import { loadInventory, type Model, type PairModel } from '@hafw/inventory'
import { renderInventory, type RenderedNode } from '@hafw/render'
import { describeNode, FENCE, FENCED_EXIT, fenceLines, formatPlan, GENERATIONS, normaliseLive, orderSteps, parseRead, planNode, readScript, summarize, unifiedDiff, type NodeState } from '@hafw/plan'
import { parseAddrs, parseConntrackdStats, probeScript, type NodeProbe } from '@hafw/verify'
import {
  confirmScript, decideOrder, describeOutcome, judgeHostSample, judgeSample, redactPair, rollbackScript, rolloutItems, saveRuleset, stageScript, stagedPath, stepLine, swapScript, type SyncWatch,
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
      writeFileSync(join(dir, 'b c.conf'), '')
      writeFileSync(join(dir, 'd.sh'), '#!/bin/sh\n@@hafw data -\n', { mode: 0o755 })
      const paths = [join(dir, 'a.conf'), join(dir, 'missing'), join(dir, 'b c.conf'), join(dir, 'd.sh')]
      const r = await exec('sh', ['-s'], { input: readScript(paths, [], 'iptables'), allowFail: true })
      const st = parseRead(r.stdout)
      // one stat and one base64 for all files, split again by byte sizes (multi-byte characters)
      expect(st.files[join(dir, 'a.conf')]).toMatchObject({ exists: true, content: 'line 1\nünïcode\n', mode: '640' })
      expect(st.files[join(dir, 'missing')]).toMatchObject({ exists: false })
      expect(st.files[join(dir, 'b c.conf')]).toMatchObject({ exists: true, content: '' })
      expect(st.files[join(dir, 'd.sh')]).toMatchObject({ exists: true, content: '#!/bin/sh\n@@hafw data -\n', mode: '755' })
      expect(st.generation).toBeNull()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
    expect(() => parseRead('garbage')).toThrow(/cut short/)
  })

  it('live state is compared normalised: no comments, counters, kernel or local routes; routes sorted; idempotent', () => {
    const save = '# Generated by iptables-save\n*filter\n:INPUT ACCEPT [12:345]\n-A INPUT -j ACCEPT\nCOMMIT\n# Completed\n'
    expect(normaliseLive('ruleset', save)).toBe('*filter\n:INPUT ACCEPT\n-A INPUT -j ACCEPT\nCOMMIT\n')
    const routes = 'default via 10.0.0.1 dev e0 table 100\n10.0.0.0/24 dev e0 proto kernel scope link src 10.0.0.2\nlocal 10.0.0.2 dev e0 table local proto kernel\n2001:db8::/64 via fe80::1 dev e0 metric 1024\n10.9.0.0/16 via 10.0.0.1 dev e0\n'
    const n = normaliseLive('routes', routes)
    expect(n).toBe('10.9.0.0/16 via 10.0.0.1 dev e0\n2001:db8::/64 via fe80::1 dev e0 metric 1024\ndefault via 10.0.0.1 dev e0 table 100\n')
    for (const k of ['ruleset', 'routes', 'rules'] as const) expect(normaliseLive(k, normaliseLive(k, k === 'routes' ? routes : save))).toBe(normaliseLive(k, k === 'routes' ? routes : save))
  })

  it("the current generation's recorded live state comes with the files; an older generation's is not read", () => {
    const b64 = (x: string) => Buffer.from(x).toString('base64')
    const rec = (g: number, k: string) => `${GENERATIONS}/${g}/live/${k}`
    const parts = { ruleset: '*filter\n:INPUT ACCEPT [1:2]\nCOMMIT\n', routes: '10.9.0.0/16 via 10.0.0.1 dev e0\n', rules: '0:\tfrom all lookup local\n' }
    const stat = ['/etc/a.conf', ...Object.keys(parts).map((k) => rec(4, k))].map((p, i) => `${i === 0 ? 2 : parts[p.split('/').pop() as keyof typeof parts].length} 644 root:root ${p}`).join('\n')
    const out = `\n@@hafw files -\n${stat}\n@@hafw data -\n${b64('a\n' + Object.values(parts).join(''))}\n@@hafw gen -\n4\n@@hafw end -\n`
    const st = parseRead(out)
    expect(Object.keys(st.files)).toEqual(['/etc/a.conf'])
    expect(st.recorded).toEqual({ ruleset: '*filter\n:INPUT ACCEPT\nCOMMIT\n', routes: parts.routes, rules: parts.rules })
    expect(parseRead(out.replace('@@hafw gen -\n4', '@@hafw gen -\n5')).recorded).toBeNull()
  })

  it("the rollback keeps the live ruleset only when it reloads the firewall and no loader exists to do it", () => {
    const fw = [{ service: 'firewall' as const, command: ['/usr/local/sbin/hafw-firewall'] }]
    expect(saveRuleset([], {})).toBe(false)
    expect(saveRuleset(fw, {})).toBe(true)
    expect(saveRuleset(fw, { '/usr/local/sbin/hafw-firewall': { exists: true, mode: '644' } })).toBe(true)
    expect(saveRuleset(fw, { '/usr/local/sbin/hafw-firewall': { exists: true, mode: '755' } })).toBe(false)
    const p = planNode(fw1a, emptyState())
    const rb = (save: boolean) => rollbackScript({ gen: 2, prev: 1, backend: 'iptables', changes: p.files, steps: p.steps, enable: [], start: [], saveRuleset: save })
    expect(rb(true)).toContain('ruleset.save')
    expect(rb(false)).not.toContain('ruleset.save')
  })

  it('units come from one `systemctl show`, in the order asked; no answer leaves them unknown', () => {
    const out = '\n@@hafw units -\nActiveState=active\nUnitFileState=enabled\n\nActiveState=inactive\nUnitFileState=\n\n@@hafw end -\n'
    expect(parseRead(out, 'n', ['keepalived.service', 'nope.service']).units).toEqual({ 'keepalived.service': { enabled: 'enabled', active: 'active' }, 'nope.service': { enabled: '', active: 'inactive' } })
    expect(parseRead('\n@@hafw units -\n\n@@hafw end -\n', 'n', ['x.service']).units).toEqual({ 'x.service': { enabled: '', active: '' } })
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
  const full = [...parseAddrs(addr('ens3', '192.168.10.10', '192.168.10.60')), ...parseAddrs(addr('ens4', '192.168.11.10'))]
  /** What verify's probe reports of a node: its addresses, units and (sync pairs) conntrackd's received packets. */
  const probe = (addrs: NodeProbe['addrs'], o: { keepalived?: string; recv?: number } = {}): NodeProbe => ({
    t: 0,
    addrs,
    units: { 'keepalived.service': o.keepalived ?? 'active' },
    state: null,
    kernelEntries: null,
    conntrackd: o.recv === undefined ? { running: false, error: 'no answer' } : { running: true, stats: parseConntrackdStats(`UDP traffic (active device=ens5):\n  40 Pckts sent  ${o.recv} Pckts recv\n`) },
  })
  const noSync: PairModel = { ...edge1, conntrack_sync: null }
  const gate = (pair: PairModel, probes: Record<string, NodeProbe>, updated = both, node = 'fw1a', watch: SyncWatch = {}) => judgeSample(pair, node, updated, probes, watch)
  it('gate: exactly one holder per instance; preemption decides who; partial holders only count once updated', () => {
    expect(gate(noSync, { fw1a: probe(full), fw1b: probe([]) })).toEqual({ problems: [], master: 'fw1a' })
    expect(gate(noSync, { fw1a: probe([]), fw1b: probe([]) }).problems[0]).toMatch(/VI_OUT: no MASTER/)
    expect(gate(noSync, { fw1a: probe(full), fw1b: probe(full) }).problems[0]).toMatch(/split brain/)
    // fw1a (priority 150) preempts: fw1b holding the VIPs is not settled yet, unless fw1a runs no keepalived
    expect(gate(noSync, { fw1a: probe([]), fw1b: probe(full) }, both, 'fw1b').problems).toEqual([expect.stringMatching(/VIPs are on fw1b, but fw1a .*preempting/)])
    expect(gate(noSync, { fw1a: probe([], { keepalived: 'inactive' }), fw1b: probe(full) }, both, 'fw1b')).toEqual({ problems: [], master: 'fw1b' })
    // ...but the changed node's own units must all run
    expect(gate(noSync, { fw1a: probe([], { keepalived: 'inactive' }), fw1b: probe(full) }).problems).toEqual(['fw1a: keepalived.service is inactive'])
    expect(gate({ ...noSync, vrrp: { ...noSync.vrrp, nopreempt: true } }, { fw1a: probe([]), fw1b: probe(full) }, both, 'fw1b').problems).toEqual([])
    const partial = full.filter((a) => a.ip !== '192.168.10.60')
    expect(gate(noSync, { fw1a: probe(partial), fw1b: probe([]) }, ['fw1a']).problems[0]).toMatch(/fw1a is MASTER but lacks 192\.168\.10\.60/)
    expect(gate(noSync, { fw1a: probe(partial), fw1b: probe([]) }, ['fw1b'], 'fw1b').problems).toEqual([])
  })
  it('gate: sync messages must arrive on both nodes after the services ran; a restart resets the baseline', () => {
    const watch: SyncWatch = {}
    const at = (a: number, b: number) => gate(edge1, { fw1a: probe(full, { recv: a }), fw1b: probe([], { recv: b }) }, both, 'fw1b', watch).problems
    expect(at(5, 0)).toEqual(['fw1b: no sync message received from its peer yet (0 packets received)', 'fw1a: no sync message received from its peer yet (5 packets received)'])
    expect(at(5, 1)).toEqual(['fw1a: no sync message received from its peer yet (5 packets received)'])
    expect(at(6, 1)).toEqual([])
    expect(at(6, 0)).toEqual(['fw1b: no sync message received from its peer yet (0 packets received)'])
    expect(gate(edge1, { fw1a: probe(full), fw1b: probe([], { recv: 3 }) }, both, 'fw1b')).toEqual({ problems: [], master: 'fw1a', note: "fw1a's conntrackd is not running: sync link not checked" })
    expect(gate(edge1, { fw1a: probe(full, { recv: 3 }), fw1b: probe([]) }, both, 'fw1b').problems).toEqual(['fw1b: conntrackd does not answer (no answer)'])
  })
})

describe('apply: the host gate', () => {
  const app1 = { name: 'app1', pbr: [{ interface: 'ops', table: 100, table_name: 'ops', fwmark: '0x1', gateway: '10.1.0.1' }] }
  const host = (rules: string[], routing = 'active'): NodeProbe => ({ t: 0, addrs: [], units: { 'hafw-firewall.service': 'active', 'hafw-routing.service': routing }, state: null, kernelEntries: null, conntrackd: null, rules })
  it('units active and the fwmark rule in place (table by name or number)', () => {
    expect(judgeHostSample(app1, host(['0:\tfrom all lookup local', '32765:\tfrom all fwmark 0x1 lookup ops', '32766:\tfrom all lookup main']))).toEqual({ problems: [], master: null })
    expect(judgeHostSample(app1, host(['32765:\tfrom all fwmark 0x1 lookup 100'])).problems).toEqual([])
    expect(judgeHostSample(app1, host(['32765:\tfrom all fwmark 0x10 lookup ops', '32764:\tfrom all fwmark 0x1 lookup ops2'], 'failed')).problems).toEqual([
      'app1: hafw-routing.service is failed',
      'app1: no policy rule "fwmark 0x1 lookup ops" (ip rule)',
    ])
  })
  it('a conntrackd restarted by the swap counts from zero: its first packets count at once', () => {
    const watch: SyncWatch = { fw1b: { base: 0, last: 0 } }
    const probe = (recv: number): NodeProbe => ({ t: 0, addrs: [], units: {}, state: null, kernelEntries: null, conntrackd: { running: true, stats: parseConntrackdStats(`UDP traffic (active device=ens5):\n  1 Pckts sent  ${recv} Pckts recv\n`) } })
    const v = judgeSample({ ...edge1, vrrp: { ...edge1.vrrp, instances: [] } }, 'fw1b', ['fw1a', 'fw1b'], { fw1a: probe(9), fw1b: probe(2) }, watch)
    expect(v.problems).toEqual(['fw1a: no sync message received from its peer yet (9 packets received)'])
  })
})

describe('apply: scripts sent to nodes', () => {
  const p = planNode(fw1a, emptyState())
  const common = { gen: 7, prev: 6, backend: 'iptables' as const, changes: p.files, saveRuleset: true }
  const scripts = {
    stage: stageScript({ ...common, files: fw1a.files, manifestJson: '{}', rollback: '#!/bin/sh\n' }),
    swap: swapScript({ gen: 7, confirmTimeoutS: 60, changes: p.files, steps: p.steps, enable: p.enable, start: p.start }),
    'fenced swap': swapScript({ gen: 7, confirmTimeoutS: 60, changes: p.files, steps: p.steps, enable: p.enable, start: p.start, fence: 1764662400123 }),
    'fenced stage': stageScript({ ...common, files: fw1a.files, manifestJson: '{}', rollback: '#!/bin/sh\n', fence: 1764662400123 }),
    rollback: rollbackScript({ ...common, steps: p.steps, enable: p.enable, start: p.start }),
    confirm: confirmScript(7, 'iptables'),
    probe: probeScript({ units: ['keepalived.service', 'hafw-firewall.service'], conntrackdConf: '/etc/conntrackd/conntrackd.conf' }),
  }
  it.each(Object.keys(scripts))('%s script passes sh -n', async (k) => {
    const r = await exec('sh', ['-n'], { input: scripts[k as keyof typeof scripts], allowFail: true })
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
  })
  it('"@@path" follows the last step on the path to the node (not conntrackd, keepalived); none when units start', () => {
    const steps = (names: string[]) => names.map((n) => ({ service: n as never, action: 'run' as const, command: ['true'], because: [] }))
    const sw = (names: string[], start: string[] = []) => swapScript({ gen: 7, confirmTimeoutS: 60, changes: [], steps: steps(names), enable: [], start })
    const s = sw(['firewall', 'routing', 'conntrackd', 'keepalived'])
    expect(s.indexOf('@@path')).toBeGreaterThan(s.indexOf('routing/run'))
    expect(s.indexOf('@@path')).toBeLessThan(s.indexOf('conntrackd/run'))
    const k = sw(['conntrackd', 'keepalived'])
    expect(k.indexOf('@@path')).toBeLessThan(k.indexOf('conntrackd/run'))
    expect(sw(['firewall', 'conntrackd'], ['hafw-firewall.service'])).not.toContain('@@path')
  })
  it('the rollback timer is armed before the first rename, with sub-second accuracy', () => {
    const s = scripts.swap
    expect(s.indexOf('systemd-run')).toBeLessThan(s.indexOf('mv -f'))
    expect(s).toMatch(/--on-active=60 --timer-property=AccuracySec=100ms --unit=hafw-rollback-7/)
  })
  it('rollback asks the peer for a resync after it restarted conntrackd', () => {
    const withSync = rollbackScript({ ...common, steps: p.steps, enable: p.enable, start: [], resync: '/etc/conntrackd/conntrackd.conf' })
    expect(withSync.indexOf('conntrackd -C /etc/conntrackd/conntrackd.conf -n || true')).toBeGreaterThan(withSync.indexOf('systemctl restart conntrackd.service'))
  })
  it('the fence: a node refuses a token lower than one it has seen, records a higher one (real sh)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hafw-fence-'))
    const file = join(dir, 'fence')
    // the node's lines, pointed at a scratch file; "changed" stands for whatever the script does next
    const run = async (token: number | string, env: Record<string, string> = {}) => {
      const r = await exec('sh', ['-c', [...fenceLines(token).map((l) => l.replaceAll(FENCE, file)), 'echo changed'].join('\n')], { allowFail: true, env: { ...process.env, ...env } })
      return { code: r.code, out: r.stdout.trim(), fence: (() => { try { return readFileSync(file, 'utf8').trim() } catch { return null } })() }
    }
    try {
      expect(await run(1764662400123)).toEqual({ code: 0, out: 'changed', fence: '1764662400123' })
      expect(await run(1764662400123)).toEqual({ code: 0, out: 'changed', fence: '1764662400123' })
      // a job that lost its lease while a newer one wrote: refused, nothing after the check runs
      expect(await run(1764662400100)).toEqual({ code: FENCED_EXIT, out: '@@fenced 1764662400123', fence: '1764662400123' })
      expect(await run(1764662400124)).toEqual({ code: 0, out: 'changed', fence: '1764662400124' })
      // rollback.sh takes it from the environment; anything but digits is refused
      expect(await run('"$HAFW_FENCE"', { HAFW_FENCE: '1764662400124' })).toMatchObject({ code: 0, out: 'changed' })
      expect(await run('"$HAFW_FENCE"', { HAFW_FENCE: '1; rm -rf /' })).toMatchObject({ code: FENCED_EXIT, out: '@@fenced bad token' })
      expect(() => fenceLines(1.5)).toThrow(/positive integer/)
      expect(fenceLines(undefined)).toEqual([])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
  it('fenced scripts check the fence under the node lock, before anything changes', () => {
    for (const s of [scripts['fenced swap'], scripts['fenced stage']]) {
      expect(s.indexOf('flock 9')).toBeLessThan(s.indexOf(`"$f" -gt "$t"`))
      expect(s.indexOf(`"$f" -gt "$t"`)).toBeLessThan(s.search(/systemd-run|rm -rf/))
    }
    expect(scripts.swap).not.toContain(FENCE)
    expect(scripts.rollback).toContain('if [ -n "${HAFW_FENCE:-}" ]; then')
  })
  it('staged files sit next to their target and never end in .conf', () => {
    expect(stagedPath('/etc/sysctl.d/90-hafw.conf', 3)).toBe('/etc/sysctl.d/.90-hafw.conf.hafw-3')
  })
  it('a reload of a stopped unit starts it', () => {
    expect(stepLine({ command: ['systemctl', 'reload', 'keepalived.service'] })).toBe('systemctl reload-or-restart keepalived.service')
    expect(stepLine({ command: ['systemctl', 'restart', 'conntrackd.service'] })).toBe('systemctl restart conntrackd.service')
    expect(stepLine({ command: ['/usr/local/sbin/hafw-firewall'] })).toBe('/usr/local/sbin/hafw-firewall')
  })
  it('rollback stops what the generation started, restores the saved ruleset when no loader existed before', () => {
    expect(scripts.rollback).toMatch(/systemctl stop .*keepalived\.service/)
    expect(scripts.rollback).toContain('iptables-restore < "$G/7"/ruleset.save')
    expect(scripts.rollback.indexOf('systemctl stop')).toBeLessThan(scripts.rollback.indexOf('mv -f -- '))
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
    expect(() => rolloutItems(m, { pair: 'nope' })).toThrow(/no pair or host named "nope" \(pairs: edge1, lb1; hosts: none\)/)
  })
  it('hosts: entries are rolled out too, after the pairs, each under its own name', async () => {
    const ref = await loadInventory('inventory/reference.yaml')
    const items = rolloutItems(ref, {})
    expect(items.map((i) => i.pair)).toEqual([...ref.pairs.map((p) => p.name), 'app1'])
    expect(items.at(-1)!.input).toMatchObject({ host: { name: 'app1', pbr: [{ fwmark: '0x1', table: 100, table_name: 'ops' }] } })
    expect(rolloutItems(ref, { pair: 'app1' }).map((i) => i.pair)).toEqual(['app1'])
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
