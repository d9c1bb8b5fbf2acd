import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { spawn } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { exec, type ProgressEvent } from '@hafw/core'
import { loadInventory, type Model } from '@hafw/inventory'
import { applyOverlay, labExec, labProbes, readOverlay } from '@hafw/lab'
import { verifyPair, type PairStatus, type VerifyResult } from '@hafw/verify'
import { makeFlows } from '../support/flows.js'
import { labSite } from '../support/lab-site.js'

/*
 * Root only. `hafw verify` and `hafw status` against a real pair: inventory/lab.yaml (own site,
 * own state dir) booted by the lab and configured by `hafw apply`, real flows from the probe
 * client through the VIP and its DNAT to the probe server, then faults made with real tools:
 * an iptables rule on the sync link, one on VRRP, conntrackd stopped.
 *
 * A test condition, not product behaviour: the firewall nodes keep UDP and TIME_WAIT entries for
 * 10 minutes (sysctl in their namespaces), so the flows made before a fault do not expire during
 * it and the counts stay exact. The load-balancer pair runs VRRP only (the lab's keepalived
 * --vrrp: IPVS is not in this kernel).
 */

const isRoot = process.getuid?.() === 0
const SITE = `vt${process.pid}`
const GRACE = 2
const FW = ['fw1a', 'fw1b'] as const

describe.skipIf(!isRoot)('verify and status on a real pair', () => {
  const lab = labSite(SITE, 'verifytest')
  const file = join(lab.dir, 'lab.yaml')
  const { env, cli } = lab
  const verify = async (args: string[]) => {
    const r = await cli(['verify', file, '--json', '--grace', String(GRACE), ...args])
    let j: VerifyResult
    try {
      j = JSON.parse(r.stdout) as VerifyResult
    } catch {
      throw new Error(`hafw verify printed no JSON (exit ${r.code}):\n${r.stdout}\n${r.stderr}`)
    }
    return { code: r.code, j, p: j.pairs[0]!, stderr: r.stderr }
  }
  const node = (name: string, cmd: string) => labExec(SITE, name, ['sh', '-c', cmd])
  let model: Model
  let client: string
  let port = 20000
  /** flows through edge1's DNAT: TCP to 192.168.10.60:25, UDP to :5353, fresh source ports each time */
  const flows = async (tcp: number, udp: number) => {
    const b = { tcpFrom: port, tcp, udpFrom: port + tcp, udp }
    port += tcp + udp
    expect(await makeFlows(SITE, client, { host: '192.168.10.60', tcpPort: 25, udpPort: 5353 }, b)).toBe(tcp + udp)
    return b
  }
  const until = async <T>(what: string, fn: () => Promise<T>, ok: (t: T) => boolean, ms = 30_000): Promise<T> => {
    const end = Date.now() + ms
    for (;;) {
      const t = await fn()
      if (ok(t)) return t
      if (Date.now() > end) throw new Error(`${what}: not reached in ${ms / 1000} s: ${JSON.stringify(t).slice(0, 2000)}`)
      await new Promise((r) => setTimeout(r, 1000))
    }
  }
  const status = async () => {
    const r = await cli(['status', file, '--json'])
    return JSON.parse(r.stdout) as PairStatus[]
  }

  beforeAll(async () => {
    await exec('npx', ['tsc', '-b', 'packages/cli'], { timeoutMs: 300_000 })
    writeFileSync(file, readFileSync('inventory/lab.yaml', 'utf8').replace(/^site: lab$/m, `site: ${SITE}`))
    model = await lab.up(file)
    client = (await labProbes(SITE)).find((p) => p.role === 'client' && p.pair === 'edge1')!.name
    // Configure both pairs the way an operator would.
    const a = await cli(['apply', file, '--yes'], 300_000)
    expect(a.code, a.stdout + a.stderr).toBe(0)
    for (const n of FW) {
      await node(n, 'sysctl -qw net.netfilter.nf_conntrack_udp_timeout=600 net.netfilter.nf_conntrack_udp_timeout_stream=600 net.netfilter.nf_conntrack_tcp_timeout_time_wait=600')
    }
  })

  afterAll(() => lab.down())

  it('converges with a few thousand real TCP and UDP flows through the pair', async () => {
    await flows(1500, 1500)
    const { code, p, stderr } = await verify(['--pair', 'edge1'])
    expect(code, stderr).toBe(0)
    expect(p).toMatchObject({ pair: 'edge1', ok: true, converged: true, active: 'fw1a', standby: 'fw1b', source: 'kernel', missing: [], extra: [], mismatched: [], problems: [] })
    expect(p.counts).toMatchObject({ missing: 0, extra: 0, mismatched: 0 })
    // every flow of ours is compared, entry by entry, on both sides
    expect(p.counts.compared!.active).toBeGreaterThanOrEqual(3000)
    expect(p.counts.matched).toBe(p.counts.compared!.active)
    expect(p.counts.standbyExternal).toBeGreaterThanOrEqual(3000)
    expect(p.counts.activeInternal).toBe(p.counts.standbyExternal)
    expect(p.roles).toEqual({ fw1a: { VI_OUT: 'MASTER', VI_IN: 'MASTER' }, fw1b: { VI_OUT: 'BACKUP', VI_IN: 'BACKUP' } })
    expect(p.vips.every((v) => v.holders.length === 1 && v.holders[0] === 'fw1a')).toBe(true)
    // the standby must have heard the active; the active's side is judged on the time the run took
    expect(p.sync!.fw1b).toMatchObject({ running: true, link: 'RUNNING', liveness: 'alive' })
    expect(p.sync!.fw1a).toMatchObject({ running: true, link: 'RUNNING', liveness: expect.stringMatching(/^(alive|unknown)$/) })
    expect(p.dumps.map((d) => `${d.node} ${d.kind}`)).toEqual(['fw1a kernel', 'fw1b external'])
    console.log(`converged: ${p.counts.matched} entries matched in ${p.polls} poll(s), ${(p.ms / 1000).toFixed(1)} s; dumps ${p.dumps.map((d) => `${d.node} ${d.kind} ${d.bytes} B ${d.ms} ms`).join(', ')}`)
  })

  it('the operation as a schedule submits it ({file, pair}) with the internal cache as the active side', async () => {
    const overlay = (await readOverlay(SITE))!
    const events: ProgressEvent[] = []
    const r = await verifyPair({ file, pair: 'edge1', source: 'internal', grace: GRACE }, (e) => events.push(e), AbortSignal.timeout(60_000), async (i) => applyOverlay(await loadInventory(i.file), overlay))
    const p = r.pairs[0]!
    expect(p).toMatchObject({ ok: true, converged: true, source: 'internal' })
    expect(p.dumps.map((d) => d.kind)).toEqual(['internal', 'external'])
    expect(p.counts.compared!.active).toBeGreaterThanOrEqual(3000)
    // conntrackd -i prints each entry's age: one poll decides, nothing waits for persistence
    expect(p.counts.pending).toBe(0)
    expect(events.some((e) => e.scope === 'edge1' && /converged/.test(e.message))).toBe(true)
  })

  it('status: one line per pair with roles, VIP owner, sync and cache sizes', async () => {
    const rows = await status()
    const edge = rows.find((r) => r.pair === 'edge1')!
    expect(edge).toMatchObject({ ok: true, active: 'fw1a', standby: 'fw1b', inSync: true, problems: [] })
    expect(edge.counts.activeInternal).toBeGreaterThanOrEqual(3000)
    const text = await cli(['status', file, '--pair', 'edge1'])
    expect(text.code).toBe(0)
    const line = text.stdout.split('\n').find((l) => l.startsWith('edge1 '))!
    expect(line).toMatch(/^edge1\s+fw1a\s+fw1a MASTER,MASTER\s+fw1b BACKUP,BACKUP\s+fw1a\s+fw1a ok rx\+\d+\s+fw1b ok rx\+\d+\s+(\d+) = \1\s+ok$/)
  })

  it('sync link blocked: not converged, missing = exactly the flows made after the block; unblocked: converges again', async () => {
    await node('fw1b', 'iptables -I INPUT -p udp --dport 3780 -j DROP')
    let blocked: Awaited<ReturnType<typeof verify>>
    let b: Awaited<ReturnType<typeof flows>>
    try {
      b = await flows(300, 200)
      blocked = await verify(['--pair', 'edge1', '--deadline', '6'])
    } finally {
      await node('fw1b', 'iptables -D INPUT -p udp --dport 3780 -j DROP')
    }
    const { code, p } = blocked
    expect(code).toBe(1)
    expect(p.converged).toBe(false)
    expect(p.counts.missing).toBe(500)
    expect(p.counts).toMatchObject({ extra: 0, mismatched: 0 })
    // the samples are our flows of the second batch
    for (const f of p.missing) {
      expect(f.orig).toMatchObject({ src: '192.168.10.100', dst: '192.168.10.60' })
      expect(f.orig.sport).toBeGreaterThanOrEqual(b.tcpFrom)
      expect(f.orig.sport).toBeLessThan(b.udpFrom + b.udp)
    }
    expect(p.problems.map((x) => `${x.kind} ${x.node}`)).toContain('sync-link-silent fw1b')
    expect(p.sync!.fw1b!.liveness).toBe('silent')

    const again = await verify(['--pair', 'edge1', '--deadline', '30'])
    expect(again.p.counts, JSON.stringify(again.p.problems)).toMatchObject({ missing: 0, extra: 0, mismatched: 0 })
    expect(again.p.converged).toBe(true)
    expect(again.p.counts.matched).toBeGreaterThanOrEqual(3500)
  })

  it('conntrackd stopped on the standby: reported, and the pair converges once it resynced', async () => {
    await node('fw1b', 'systemctl stop conntrackd.service')
    try {
      const { code, p } = await verify(['--pair', 'edge1', '--deadline', '0'])
      expect(code).toBe(1)
      expect(p.converged).toBe(false)
      expect(p.problems.find((x) => x.kind === 'conntrackd-down')).toMatchObject({ node: 'fw1b', message: expect.stringMatching(/conntrackd is not running \(conntrackd.service inactive/) })
      const rows = await status()
      expect(rows.find((r) => r.pair === 'edge1')!.sync!.fw1b).toMatchObject({ running: false })
    } finally {
      // a restarted conntrackd has an empty external cache: ask the active for a full resync
      await node('fw1b', 'systemctl start conntrackd.service && conntrackd -C /etc/conntrackd/conntrackd.conf -n')
    }
    const { code, p } = await verify(['--pair', 'edge1', '--deadline', '30'])
    expect(code, JSON.stringify(p.problems)).toBe(0)
    expect(p.converged).toBe(true)
  })

  it('VRRP blocked between the nodes: split brain reported, healthy again once unblocked', async () => {
    await node('fw1b', 'iptables -I INPUT -p vrrp -j DROP')
    let split: Awaited<ReturnType<typeof verify>>
    try {
      // the standby declares the master dead after 3 x advert_int + skew
      split = await until('split brain', () => verify(['--pair', 'edge1', '--deadline', '0']), (v) => v.p.problems.some((x) => x.kind === 'split-brain'), 20_000)
    } finally {
      await node('fw1b', 'iptables -D INPUT -p vrrp -j DROP')
    }
    const { code, p } = split
    expect(code).toBe(1)
    expect(p).toMatchObject({ ok: false, converged: false, active: null })
    expect(p.problems.filter((x) => x.kind === 'split-brain').map((x) => x.instance).sort()).toEqual(['VI_IN', 'VI_OUT'])
    expect(p.vips.every((v) => v.holders.length === 2)).toBe(true)
    expect(p.roles.fw1b).toEqual({ VI_OUT: 'MASTER', VI_IN: 'MASTER' })
    // fw1b hears fw1a again, goes back to BACKUP and its state script resyncs conntrackd
    const healed = await until('healthy again', () => verify(['--pair', 'edge1', '--deadline', '20']), (v) => v.code === 0, 60_000)
    expect(healed.p).toMatchObject({ active: 'fw1a', converged: true, problems: [] })
  })

  it('a load-balancer pair (no conntrack sync): VRRP health only', async () => {
    const { code, p } = await verify(['--pair', 'lb1', '--deadline', '10'])
    expect(code, JSON.stringify(p.problems)).toBe(0)
    expect(p).toMatchObject({ pair: 'lb1', kind: 'loadbalancer', ok: true, converged: null, source: null, sync: null, dumps: [] })
    expect(p.active).toMatch(/^lb1[ab]$/)
    expect(p.counts).toMatchObject({ activeKernel: null, activeInternal: null, standbyExternal: null, compared: null })
    // both nodes down: no MASTER, and keepalived reported on each
    await Promise.all(['lb1a', 'lb1b'].map((n) => node(n, 'systemctl stop keepalived.service')))
    try {
      const down = await verify(['--pair', 'lb1', '--deadline', '0'])
      expect(down.code).toBe(1)
      expect(down.p.problems.map((x) => x.kind).sort()).toEqual(['keepalived-down', 'keepalived-down', 'no-master', 'no-master'])
    } finally {
      await Promise.all(['lb1a', 'lb1b'].map((n) => node(n, 'systemctl start keepalived.service')))
    }
  })

  it('status --watch refreshes every 2 s until interrupted', async () => {
    const child = spawn(process.execPath, ['packages/cli/bin/run.js', 'status', file, '--watch', '--json', '--pair', 'edge1'], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    const lines: string[] = []
    let buf = ''
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString()
      const parts = buf.split('\n')
      buf = parts.pop()!
      lines.push(...parts.filter(Boolean))
    })
    const exited = new Promise<number | null>((res) => child.on('exit', (c) => res(c)))
    await until('three refreshes', async () => lines.length, (n) => n >= 3, 30_000)
    child.kill('SIGINT')
    expect(await exited).toBe(0)
    const snaps = lines.map((l) => JSON.parse(l) as PairStatus[])
    expect(snaps.every((s) => s.length === 1 && s[0]!.pair === 'edge1' && s[0]!.active === 'fw1a')).toBe(true)
    // a refresh starts every 2 s (one may take longer: it waits up to 2.5 s for a sync message)
    const ts = snaps.map((s) => s[0]!.t)
    expect(ts.at(-1)! - ts[0]!).toBeGreaterThanOrEqual(2000 * (ts.length - 1) - 1500)
  })
})
