import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parse, stringify } from 'yaml'
import { exec, type ProgressEvent } from '@hafw/core'
import { runDrillJob, ProbeWitness, type DrillJobInput, type DrillResult, type PhaseResult } from '@hafw/drill'
import { labExec, labProbes } from '@hafw/lab'
import { labSite } from '../support/lab-site.js'

/*
 * Root only. Failover drills on a real pair: inventory/lab.yaml (own site, own state dir)
 * booted by the lab and configured by `hafw apply`, witness flows from the lab's probe client
 * through the pair to its probe server (DNAT and forwarded, TCP and UDP), and every fault made
 * with the real tools (systemctl, kill -9, ip link, iptables) on the real nodes.
 *
 * The load-balancer pair's virtual servers are left out of this copy (IPVS is not in this
 * kernel, LAB.md): its VRRP part is drilled, which exercises the nopreempt hand-over.
 */

const isRoot = process.getuid?.() === 0
const SITE = `dt${process.pid}`

describe.skipIf(!isRoot)('drills on a real pair', () => {
  const lab = labSite(SITE, 'drilltest')
  const { dir, stateDir, cli } = lab
  const file = join(dir, 'lab.yaml')
  const sh = (node: string, cmd: string) => labExec(SITE, node, ['sh', '-c', cmd], { allowFail: true })
  const drill = (i: Omit<DrillJobInput, 'file' | 'pair'> & { pair?: string }, signal = AbortSignal.timeout(300_000), events: ProgressEvent[] = []) =>
    runDrillJob({ file, pair: 'edge1', ...i }, (e) => events.push(e), signal)
  const ev = (p: PhaseResult, name: string) => p.timeline.find((e) => e.event === name)
  const vipHolder = async () => ((await sh('fw1a', 'ip -o -4 addr show')).stdout.includes('192.168.10.60/') ? 'fw1a' : (await sh('fw1b', 'ip -o -4 addr show')).stdout.includes('192.168.10.60/') ? 'fw1b' : null)
  const summary = (r: DrillResult) =>
    `${r.mode}: ${r.verdict}; ${[r.failover, r.failback].filter((p): p is PhaseResult => !!p).map((p) => `${p.phase} ${p.from}->${p.to} failover ${p.failover_ms} ms, gap ${p.gap_ms} ms (bound ${p.bound_ms}), commit ${p.commit.entries} entries ${p.commit.ms} ms, flows ${p.flows.kept}/${p.flows.total} kept, ${p.flows.reset} reset`).join('; ')}`

  /** What every passing drill on edge1 shows: the flows, the timeline in order, the nodes whole again. */
  const expectClean = async (r: DrillResult, mode: string) => {
    expect(r, r.reasons.join('\n')).toMatchObject({ pair: 'edge1', site: SITE, kind: 'firewall', mode, verdict: 'pass', witnesses: 'probes' })
    expect(r.flows).toEqual({ total: 20, kept: 20, reset: 0 })
    for (const p of [r.failover, r.failback!]) {
      expect(p.flows).toMatchObject({ total: 20, kept: 20, reset: 0 })
      expect(p.gap_ms!).toBeLessThanOrEqual(p.bound_ms)
      expect(p.converged).toBe(true)
      const t = (name: string) => ev(p, name)?.t ?? NaN
      expect(ev(p, 'vips_moved')).toMatchObject({ node: p.to })
      expect(t('standby_master')).toBeGreaterThan(t('trigger'))
      expect(Math.abs(t('vips_moved') - t('standby_master'))).toBeLessThan(200)
      expect(t('commit_finished')).toBeGreaterThanOrEqual(t('commit_started'))
      expect(t('converged')).toBeGreaterThan(t('vips_moved'))
      // the witnesses themselves were replicated and committed
      expect(p.commit.entries!).toBeGreaterThanOrEqual(20)
      expect(p.failover_ms).toBe(t('standby_master') - t('trigger'))
    }
    expect(r.failover).toMatchObject({ from: 'fw1a', to: 'fw1b' })
    expect(r.failback).toMatchObject({ from: 'fw1b', to: 'fw1a' })
    expect(r.timeline).toEqual(r.failover.timeline)
    // DNAT and forwarded paths, TCP and UDP
    expect(new Set(r.failover.per_flow.map((f) => `${f.proto} ${f.path}`))).toEqual(new Set(['tcp dnat', 'udp dnat', 'tcp forward', 'udp forward']))
    // both nodes' clocks measured (one kernel clock in the lab: near 0)
    for (const n of ['fw1a', 'fw1b']) expect(Math.abs(r.clock_offsets_ms[n]!)).toBeLessThan(20)
    // whole again: fw1a (priority 150) holds the VIPs, both daemons run, no restore timer left
    expect(await vipHolder()).toBe('fw1a')
    for (const n of ['fw1a', 'fw1b']) {
      expect((await sh(n, 'systemctl is-active keepalived.service conntrackd.service')).stdout.trim().split('\n')).toEqual(['active', 'active'])
      expect((await sh(n, 'systemctl list-timers --all --no-legend | grep -c hafw-drill-restore || true')).stdout.trim()).toBe('0')
      expect((await sh(n, 'ip -o link show | grep -c "state DOWN" || true')).stdout.trim()).toBe('0')
    }
    console.log(summary(r))
  }

  beforeAll(async () => {
    await exec('npx', ['tsc', '-b', 'packages/cli'], { timeoutMs: 300_000 })
    const raw = parse(readFileSync('inventory/lab.yaml', 'utf8')) as { site: string; pairs: { name: string; virtual_servers?: unknown; vrrp: { instances: { lvs_sync_daemon?: boolean }[] } }[] }
    raw.site = SITE
    const lb = raw.pairs.find((p) => p.name === 'lb1')!
    delete lb.virtual_servers
    for (const i of lb.vrrp.instances) delete i.lvs_sync_daemon
    writeFileSync(file, stringify(raw))
    await lab.up(file)
    const a = await cli(['apply', file, '--yes'], 300_000)
    expect(a.code, a.stdout + a.stderr).toBe(0)
  })

  afterAll(() => lab.down())

  it('graceful with failback, through the CLI: JSON, table, HTML report, saved for `hafw reports`', async () => {
    const html = join(dir, 'graceful.html')
    const r = await cli(['drill', file, '--pair', 'edge1', '--mode', 'graceful', '--failback', '--json', '--report', html])
    expect(r.code, r.stderr).toBe(0)
    const j = JSON.parse(r.stdout) as DrillResult
    await expectClean(j, 'graceful')
    // a graceful stop hands over in the new master's skew time: 609 ms for priority 100
    expect(j.failover_ms!).toBeGreaterThan(400)
    expect(j.failover_ms!).toBeLessThan(1100)
    expect(j.failover.bound_ms).toBe(609 + 500)
    expect(ev(j.failover, 'trigger')).toMatchObject({ node: 'fw1a', detail: 'systemctl stop keepalived' })
    expect(readFileSync(html, 'utf8')).toMatch(/<svg/)
    const list = await cli(['reports', 'list', '--json'])
    expect((JSON.parse(list.stdout) as { reports: { id: string }[] }).reports.map((x) => x.id)).toContain(j.id)
    const show = await cli(['reports', 'show', j.id])
    expect(show.code).toBe(0)
    expect(show.stdout).toMatch(/verdict\s+PASS/)
    expect(show.stdout).toMatch(/failover timeline/)
  })

  it('crash with failback: kill -9, links down, takeover after the master-down interval', async () => {
    const r = await drill({ mode: 'crash', failback: true })
    await expectClean(r, 'crash')
    // 3 x advert_int + skew, counted from the last advert fw1a sent: between 2.4 and 3.6 s
    expect(r.failover_ms!).toBeGreaterThan(2300)
    expect(r.failover_ms!).toBeLessThan(3800)
    expect(r.failover.bound_ms).toBe(3000 + 609 + 500)
    expect(ev(r.failover, 'trigger')!.detail).toMatch(/^kill -9 keepalived and conntrackd; links (ens\d, ){2}ens\d down$/)
    expect(ev(r.failover, 'restored')).toBeDefined()
    // UDP flows lose what was sent while the path was down
    expect(r.failover.flows.lost_messages).toBeGreaterThan(0)
  })

  it('link with failback: one watched link down puts the group in FAULT', async () => {
    const r = await drill({ mode: 'link', failback: true, link: 'outside' })
    await expectClean(r, 'link')
    expect(ev(r.failover, 'trigger')).toMatchObject({ node: 'fw1a', detail: 'link ens3 down' })
    expect(r.failover_ms!).toBeGreaterThan(2300)
  })

  it('partition with failback: VRRP dropped on one segment; the sync group keeps one master', async () => {
    const r = await drill({ mode: 'partition', failback: true })
    expect(r, r.reasons.join('\n')).toMatchObject({ mode: 'partition', verdict: 'pass', flows: { total: 20, kept: 20, reset: 0 } })
    expect(ev(r.failover, 'trigger')!.detail).toBe('drop VRRP (IP protocol 112) in and out on ens3')
    // keepalived's sync group: VI_IN still hears fw1a, so fw1b stays BACKUP: no split brain
    expect(r.failover_ms).toBeNull()
    expect(r.failover.converged).toBe(true)
    expect(r.notes.join('\n')).toMatch(/fw1b did not take the VIPs over .*no split brain/)
    expect(r.failback).toBeNull()
    expect((await sh('fw1a', 'iptables -S | grep -c -- "-p 112 -j DROP" || true')).stdout.trim()).toBe('0')
    expect(await vipHolder()).toBe('fw1a')
    console.log(summary(r))
  })

  it('without probe flows the established flows through the active node are the witnesses', async () => {
    const client = (await labProbes(SITE)).find((p) => p.role === 'client' && p.pair === 'edge1')!
    const bg = new ProbeWitness(client, { targets: [{ proto: 'tcp', host: '192.168.10.60', port: 25, flows: 6, path: 'dnat' }, { proto: 'tcp', host: '192.168.11.60', port: 7, flows: 4, path: 'forward' }], intervalMs: 50, durationMs: 120_000 })
    try {
      expect(await bg.ready(10_000)).toHaveLength(10)
      const r = await drill({ mode: 'graceful', probeFlows: 0 })
      expect(r, r.reasons.join('\n')).toMatchObject({ verdict: 'pass', witnesses: 'live-flows', failback: null, gap_ms: null })
      // our 10 flows at least, each found on fw1b after the failover
      expect(r.flows.total).toBeGreaterThanOrEqual(10)
      expect(r.flows.reset).toBe(0)
      const ours = r.failover.per_flow.filter((f) => f.target.startsWith('192.168.10.100:'))
      expect(ours.length).toBe(10)
      expect(ours.every((f) => f.sent > 0)).toBe(true)
      expect(r.notes.join('\n')).toMatch(/established flows through fw1a, \d+ carry packets on fw1b/)
      // accounting restored
      expect((await sh('fw1b', 'cat /proc/sys/net/netfilter/nf_conntrack_acct')).stdout.trim()).toBe('0')
    } finally {
      const w = await bg.stop()
      expect(w.flows.filter((f) => f.reset)).toEqual([])
    }
  })

  it('an aborted drill still restores the node it broke', async () => {
    const ac = new AbortController()
    const events: ProgressEvent[] = []
    const p = drill({ mode: 'graceful', failback: true }, ac.signal, events)
    // abort as soon as the fault is in place
    const started = Date.now()
    while (!events.some((e) => /^failover: systemctl stop keepalived/.test(e.message)) && Date.now() - started < 60_000) await new Promise((r) => setTimeout(r, 50))
    ac.abort(new Error('test abort'))
    await expect(p).rejects.toThrow(/test abort|abort/)
    expect((await sh('fw1a', 'systemctl is-active keepalived.service')).stdout.trim()).toBe('active')
    for (let i = 0; i < 100 && (await vipHolder()) !== 'fw1a'; i++) await new Promise((r) => setTimeout(r, 100))
    expect(await vipHolder()).toBe('fw1a')
    expect((await sh('fw1a', 'systemctl list-timers --all --no-legend | grep -c hafw-drill-restore || true')).stdout.trim()).toBe('0')
  })

  it('the load-balancer pair: VRRP drilled, nopreempt failback handed over, IPVS noted', async () => {
    const r = await drill({ pair: 'lb1', mode: 'graceful', failback: true })
    expect(r, r.reasons.join('\n')).toMatchObject({ pair: 'lb1', kind: 'loadbalancer', verdict: 'pass' })
    expect(r.notes.join('\n')).toMatch(/IPVS is not available/)
    expect(r.failback!.from).toBe(r.failover.to)
    expect(ev(r.failback!, 'trigger')!.detail).toMatch(/systemctl restart keepalived on lb1\w \(hand-over: nopreempt\)/)
    expect(ev(r.failback!, 'fault_cleared')).toBeDefined()
    expect(r.failback!.converged).toBe(true)
    console.log(summary(r))
  })

  it('a pair whose sync link is blocked: refused without --force, fails its verdict with --force and says why', async () => {
    await sh('fw1b', 'iptables -I INPUT 1 -i ens5 -p udp --dport 3780 -j DROP')
    try {
      const refused = await cli(['drill', file, '--pair', 'edge1', '--mode', 'graceful', '--verify-deadline', '5'])
      expect(refused.code).toBe(1)
      expect(refused.stderr).toMatch(/preflight verify failed, not drilling a pair that is not whole \(--force drills it anyway\).*no sync message received/)
      expect(await vipHolder()).toBe('fw1a')
      const r = await drill({ mode: 'crash', force: true, verifyDeadlineS: 5 })
      expect(r.verdict).toBe('fail')
      const why = r.reasons.join('\n')
      // Not always 0: the check matches flows by client port, and an entry an earlier drill left
      // in fw1b's external cache (TIME_WAIT) can carry a port the witness reuses (seen once: 1 of 20).
      const seen = Number(/^only (\d+) of 20 witness flows had reached fw1b's external cache before the trigger/.exec(why)?.[1] ?? NaN)
      expect(seen, why).toBeLessThanOrEqual(2)
      expect(why).toMatch(/witness flows had not recovered when failover ended \(TCP/)
      expect(why).toMatch(/verify failed after failover: NOT converged.*no sync message received/)
      expect(r.notes.join('\n')).toMatch(/preflight verify failed, drilled anyway \(--force\)/)
      // hafw's race protection drops, never resets: the flows stall instead of dying
      expect(r.flows.reset).toBe(0)
      expect(r.flows.kept).toBe(10)
      console.log(`sync blocked: ${r.reasons.join(' | ')}`)
    } finally {
      await sh('fw1b', 'iptables -D INPUT -i ens5 -p udp --dport 3780 -j DROP; conntrackd -n')
    }
    expect(existsSync(stateDir)).toBe(true)
  })
})
