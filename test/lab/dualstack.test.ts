import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { exec } from '@hafw/core'
import type { DrillResult } from '@hafw/drill'
import { labExec, labProbes } from '@hafw/lab'
import type { VerifyResult } from '@hafw/verify'
import { makeFlows } from '../support/flows.js'
import { labSite } from '../support/lab-site.js'

/*
 * Root only. A dual-stack pair (test/fixtures/inventory/good/dualstack.yaml: IPv4 and native
 * IPv6 VRRPv3 instances in one sync group, conntrackd syncing over IPv6, NAT66, ip6tables) booted
 * by the lab and configured by `hafw apply`; real flows of both families through its DNAT rules;
 * `hafw verify` and a graceful drill on it.
 *
 * As in verify.test.ts, a test condition: TIME_WAIT entries live 10 minutes on the nodes, so the
 * closed flows stay in both tables while they are compared and the counts are exact.
 */

const isRoot = process.getuid?.() === 0
const SITE = `ds${process.pid}`
const FW = ['fw1a', 'fw1b'] as const

describe.skipIf(!isRoot)('a dual-stack pair', () => {
  const lab = labSite(SITE, 'dualstacktest')
  const file = join(lab.dir, 'dualstack.yaml')
  const cli = lab.cli
  const node = (name: string, cmd: string) => labExec(SITE, name, ['sh', '-c', cmd])
  const verify = async (args: string[]) => {
    const r = await cli(['verify', file, '--json', '--grace', '2', '--pair', 'fw1', ...args])
    const j = JSON.parse(r.stdout) as VerifyResult
    return { code: r.code, p: j.pairs[0]!, stderr: r.stderr }
  }
  let client: string
  let port = 20000
  /** n TCP exchanges through the DNAT to a VIP of one family (IPv4 192.168.10.60:25, IPv6 [fd00:10::60]:25) */
  const flows = async (host: string, n: number) => {
    const b = { tcpFrom: port, tcp: n, udpFrom: port + n, udp: 0 }
    port += n
    expect(await makeFlows(SITE, client, { host, tcpPort: 25, udpPort: 0 }, b)).toBe(n)
    return b
  }

  beforeAll(async () => {
    await exec('npx', ['tsc', '-b', 'packages/cli'], { timeoutMs: 300_000 })
    writeFileSync(file, readFileSync('test/fixtures/inventory/good/dualstack.yaml', 'utf8').replace(/^site: lab$/m, `site: ${SITE}`))
    await lab.up(file)
    client = (await labProbes(SITE)).find((p) => p.role === 'client' && p.pair === 'fw1')!.name
    const a = await cli(['apply', file, '--yes'], 300_000)
    expect(a.code, a.stdout + a.stderr).toBe(0)
    for (const n of FW) await node(n, 'sysctl -qw net.netfilter.nf_conntrack_tcp_timeout_time_wait=600')
  })

  afterAll(() => lab.down())

  it('applies both families: IPv6 VIPs by VRRPv3, ip6tables with NAT66, conntrackd on the IPv6 sync link', async () => {
    const addrs = (await node('fw1a', 'ip -o addr show')).stdout
    for (const v of ['192.168.10.60/24', 'fd00:10::60/64', 'fd00:11::10/64']) expect(addrs).toContain(` ${v} `)
    expect((await node('fw1b', 'ip -o addr show')).stdout).not.toContain(' fd00:10::60/64 ')
    const nat6 = (await node('fw1a', 'ip6tables-save -t nat')).stdout
    expect(nat6).toMatch(/-d fd00:10::60\/128 .*--dport 25 -j DNAT --to-destination fd00:11::60/)
    // conntrackd's UDP socket is on the sync link's IPv6 address
    expect((await node('fw1b', 'ss -Hunlp')).stdout).toMatch(/\[?fd00:13::12\]?:3780 .*conntrackd/)
  })

  it('converges with IPv4 and IPv6 flows through the pair, entry by entry', async () => {
    await flows('192.168.10.60', 200)
    await flows('fd00:10::60', 200)
    const { code, p, stderr } = await verify([])
    expect(code, stderr + JSON.stringify(p.problems)).toBe(0)
    expect(p).toMatchObject({ ok: true, converged: true, active: 'fw1a', standby: 'fw1b', missing: [], extra: [], mismatched: [], problems: [] })
    expect(p.counts.compared!.active).toBeGreaterThanOrEqual(400)
    expect(p.counts.matched).toBe(p.counts.compared!.active)
    expect(p.roles.fw1a).toEqual({ VI_OUT: 'MASTER', VI_IN: 'MASTER', VI_OUT6: 'MASTER', VI_IN6: 'MASTER' })
    expect(p.roles.fw1b).toEqual({ VI_OUT: 'BACKUP', VI_IN: 'BACKUP', VI_OUT6: 'BACKUP', VI_IN6: 'BACKUP' })
    expect(p.vips.find((v) => v.vip === 'fd00:10::60')).toMatchObject({ instance: 'VI_OUT6', holders: ['fw1a'] })
    // the standby's external cache holds the IPv6 flows (conntrackd -e prints the original tuple only)
    const ext = (await node('fw1b', 'conntrackd -C /etc/conntrackd/conntrackd.conf -e')).stdout
    expect(ext.split('\n').filter((l) => /^tcp +6 TIME_WAIT src=fd00:10::100 dst=fd00:10::60 sport=\d+ dport=25 /.test(l)).length).toBeGreaterThanOrEqual(200)
    console.log(`dual-stack converged: ${p.counts.matched} entries matched in ${p.polls} poll(s), ${(p.ms / 1000).toFixed(1)} s`)
  })

  it('sync over IPv6 blocked: exactly the IPv6 flows made meanwhile are missing; unblocked: converges', async () => {
    const rule = 'INPUT -p udp --dport 3780 -j DROP'
    await node('fw1b', `ip6tables -I ${rule}`)
    let blocked: Awaited<ReturnType<typeof verify>>
    let b: Awaited<ReturnType<typeof flows>>
    try {
      b = await flows('fd00:10::60', 100)
      blocked = await verify(['--deadline', '6'])
    } finally {
      await node('fw1b', `ip6tables -D ${rule}`)
    }
    const { code, p } = blocked
    expect(code).toBe(1)
    expect(p.converged).toBe(false)
    expect(p.counts).toMatchObject({ missing: 100, extra: 0, mismatched: 0 })
    expect(p.missing.length).toBeGreaterThan(0)
    for (const f of p.missing) {
      expect(f.orig).toMatchObject({ src: 'fd00:10::100', dst: 'fd00:10::60', dport: 25 })
      expect(f.orig.sport).toBeGreaterThanOrEqual(b.tcpFrom)
      expect(f.orig.sport).toBeLessThan(b.tcpFrom + b.tcp)
    }
    expect(p.problems.map((x) => `${x.kind} ${x.node}`)).toContain('sync-link-silent fw1b')

    const again = await verify(['--deadline', '30'])
    expect(again.p.counts, JSON.stringify(again.p.problems)).toMatchObject({ missing: 0, extra: 0, mismatched: 0 })
    expect(again.p.converged).toBe(true)
    expect(again.p.counts.matched).toBeGreaterThanOrEqual(500)
  })

  it('a graceful drill with failback keeps IPv4 and IPv6 flows with 0 resets', async () => {
    const r = await cli(['drill', file, '--pair', 'fw1', '--mode', 'graceful', '--failback', '--json'])
    expect(r.code, r.stderr).toBe(0)
    const j = JSON.parse(r.stdout) as DrillResult
    expect(j, j.reasons.join('\n')).toMatchObject({ pair: 'fw1', site: SITE, mode: 'graceful', verdict: 'pass', witnesses: 'probes' })
    expect(j.flows).toEqual({ total: 20, kept: 20, reset: 0 })
    for (const p of [j.failover, j.failback!]) {
      expect(p.flows).toMatchObject({ total: 20, kept: 20, reset: 0 })
      expect(p.converged).toBe(true)
      for (const fam of ['ipv4', 'ipv6'] as const) {
        const f = p.by_family![fam]!
        expect(f.total).toBeGreaterThan(0)
        expect(f).toMatchObject({ kept: f.total, reset: 0 })
      }
      expect(p.by_family!.ipv4!.total + p.by_family!.ipv6!.total).toBe(20)
    }
    expect(j.failover).toMatchObject({ from: 'fw1a', to: 'fw1b' })
    expect(j.failback).toMatchObject({ from: 'fw1b', to: 'fw1a' })
    // both families on both paths: DNAT (NAT66 for IPv6) and forwarded
    expect(new Set(j.failover.per_flow.map((f) => `${f.proto} ${f.path} ${f.family}`))).toEqual(new Set(['tcp dnat 4', 'tcp dnat 6', 'tcp forward 4', 'tcp forward 6']))
    expect(j.flows_by_family).toEqual(j.failover.by_family)
    const fam = (p: typeof j.failover) => `IPv4 ${p.by_family!.ipv4!.kept}/${p.by_family!.ipv4!.total}, IPv6 ${p.by_family!.ipv6!.kept}/${p.by_family!.ipv6!.total}`
    console.log(`dual-stack graceful: failover ${j.failover.failover_ms} ms, gap ${j.failover.gap_ms} ms, ${fam(j.failover)} kept, 0 reset; failback gap ${j.failback!.gap_ms} ms, ${fam(j.failback!)}`)
  })
})
