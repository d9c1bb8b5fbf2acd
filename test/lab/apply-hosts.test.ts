import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { labExec } from '@hafw/lab'
import type { ApplySummary } from '@hafw/apply'
import type { PlanResult } from '@hafw/plan'
import { labSite } from '../support/lab-site.js'

/*
 * `hosts:` entries (seed 000: one host answering each connection on the interface it came in
 * on, with fwmark/CONNMARK and a routing table per interface) planned, applied and rolled back
 * like a pair of one node, against a real lab host. Assertions read the host directly
 * (nsenter), not through hafw.
 */

const isRoot = process.getuid?.() === 0
const SITE = 'aphost'
const lab = labSite(SITE, 'aphost')
const { dir, cli: hafw } = lab
const json = <T>(r: { stdout: string }): T => JSON.parse(r.stdout) as T

function inventory(name: string, gateway: string): string {
  const file = join(dir, name)
  writeFileSync(
    file,
    `version: 1
site: ${SITE}
hosts:
  - name: app1
    address: 10.0.0.10
    interfaces: { main: eth0, ops: eth1 }
    addresses: { main: 10.0.0.10/24, ops: 10.1.0.10/24 }
    pbr:
      - { interface: ops, table: 100, table_name: ops, fwmark: 0x1, gateway: ${gateway} }
`,
  )
  return file
}

const on = (argv: string[]) => labExec(SITE, 'app1', argv, { allowFail: true, timeoutMs: 30_000 })
const gen = async () => (await on(['cat', '/var/lib/hafw/current'])).stdout.trim()
/** When each unit's main process last started: a reload or re-run moves it. */
const starts = async () => (await on(['systemctl', 'show', '-p', 'ExecMainStartTimestampMonotonic', 'hafw-firewall.service', 'hafw-routing.service'])).stdout.trim()

describe.skipIf(!isRoot)('apply: hosts: entries (policy routing) in the lab', () => {
  const base = inventory('base.yaml', '10.1.0.1')
  const moved = inventory('moved.yaml', '10.1.0.254')
  // the subnet's broadcast address: the inventory accepts it, the kernel refuses the route
  const broadcast = inventory('broadcast.yaml', '10.1.0.255')

  beforeAll(async () => {
    await lab.up(base, 300_000)
  })

  afterAll(() => lab.down())

  it('plan of the fresh host lists its files and exits 2', async () => {
    const p = await hafw(['plan', base, '--json'])
    expect(p.code, p.stderr).toBe(2)
    const r = json<PlanResult>(p)
    expect(r.nodes.map((n) => [n.node, n.pair, n.generation])).toEqual([['app1', null, null]])
    expect(r.nodes[0]!.files.map((f) => f.path)).toEqual(expect.arrayContaining(['/etc/iptables/rules.v4', '/usr/local/sbin/hafw-routing', '/etc/iproute2/rt_tables.d/hafw.conf']))
  })

  it('apply makes the fwmark rule, the table default route and the CONNMARK rules live', async () => {
    const r = await hafw(['apply', base, '--yes', '--confirm-timeout', '30', '--json'])
    expect(r.code, r.stderr).toBe(0)
    const s = json<ApplySummary>(r)
    expect(s.pairs.map((p) => [p.pair, p.result])).toEqual([['app1', 'applied']])
    expect(s.pairs[0]!.outcome).toMatchObject({ host: true, order: ['app1'], nodes: [{ node: 'app1', role: 'host', result: 'applied' }] })
    expect(s.pairs[0]!.outcome!.nodes[0]!.gateMs).toBeGreaterThan(0)
    expect((await on(['ip', '-4', 'rule', 'show'])).stdout).toMatch(/^\d+:\s+from all fwmark 0x1 lookup ops\s*$/m)
    expect((await on(['ip', '-4', 'route', 'show', 'table', '100'])).stdout).toMatch(/^default via 10\.1\.0\.1 dev eth1\b/m)
    const mangle = (await on(['iptables-save', '-t', 'mangle'])).stdout
    expect(mangle).toMatch(/^-A PREROUTING -i eth1 -m conntrack --ctstate NEW --ctdir ORIGINAL -j CONNMARK --set-xmark 0x1\/0xffffffff$/m)
    expect(mangle).toMatch(/^-A PREROUTING .*-j CONNMARK --restore-mark/m)
    expect(mangle).toMatch(/^-A OUTPUT .*-j CONNMARK --restore-mark/m)
    for (const u of ['hafw-firewall.service', 'hafw-routing.service']) {
      expect((await on(['systemctl', 'is-active', u])).stdout.trim()).toBe('active')
      expect((await on(['systemctl', 'is-enabled', u])).stdout.trim()).toBe('enabled')
    }
    expect(await gen()).toMatch(/^\d+$/)
  })

  it('re-applying changes nothing and re-runs nothing', async () => {
    const before = `${await gen()} ${await starts()}`
    const p = await hafw(['plan', base])
    expect(p.code, p.stderr).toBe(0)
    expect(p.stdout).toMatch(/plan: no changes on 1 node\(s\)/)
    const r = await hafw(['apply', base, '--yes', '--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(json<ApplySummary>(r).pairs.map((x) => x.result)).toEqual(['no changes'])
    expect(`${await gen()} ${await starts()}`).toBe(before)
  })

  it('a gateway the kernel refuses: the routing step fails, the host rolls back, the route stays', async () => {
    const before = await gen()
    const r = await hafw(['apply', broadcast, '--yes', '--confirm-timeout', '30', '--json'])
    expect(r.code).toBe(1)
    const s = json<ApplySummary>(r).pairs[0]!
    expect(s.result).toBe('rolled back')
    expect(s.error).toMatch(/^host app1: applying failed: routing\/run exited \d+: .*; app1 rolled back to generation \d+ by hafw/)
    expect(s.outcome!.nodes[0]!.rollback).toMatchObject({ trigger: 'hafw', ok: true, reachable: true })
    expect(await gen()).toBe(before)
    expect((await on(['ip', '-4', 'route', 'show', 'table', '100'])).stdout).toMatch(/^default via 10\.1\.0\.1 dev eth1\b/m)
    expect((await hafw(['plan', base])).code).toBe(0)
  })

  it('a new gateway replaces the route; rollback --pair app1 brings the previous one back', async () => {
    const first = await gen()
    const a = await hafw(['apply', moved, '--yes', '--confirm-timeout', '30', '--json'])
    expect(a.code, a.stderr).toBe(0)
    expect(json<ApplySummary>(a).pairs[0]!.outcome!.nodes[0]!.changed).toEqual(['/usr/local/sbin/hafw-routing'])
    expect((await on(['ip', '-4', 'route', 'show', 'table', '100'])).stdout).toMatch(/^default via 10\.1\.0\.254 dev eth1\b/m)
    const b = await hafw(['rollback', moved, '--pair', 'app1', '--confirm-timeout', '30', '--json'])
    expect(b.code, b.stderr).toBe(0)
    expect((await on(['ip', '-4', 'route', 'show', 'table', '100'])).stdout).toMatch(/^default via 10\.1\.0\.1 dev eth1\b/m)
    expect(Number(await gen())).toBeGreaterThan(Number(first))
    expect((await hafw(['plan', base])).code).toBe(0)
  })
})
