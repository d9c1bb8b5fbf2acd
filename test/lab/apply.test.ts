import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { exec } from '@hafw/core'
import { loadInventory, type Model } from '@hafw/inventory'
import { labDown, labExec, labProbes, labUp, loadInventoryForLab, readOverlay, type Overlay } from '@hafw/lab'
import { stopEmbeddedRedis } from '@hafw/queue'
import { applyPair, type ApplySummary } from '@hafw/apply'
import type { PlanResult } from '@hafw/plan'

/*
 * hafw plan / apply / rollback against a real lab: inventory/lab.yaml booted as Debian hosts
 * (own site, own state dir), reached over SSH through the lab overlay. Assertions read the
 * nodes directly (nsenter), not through hafw.
 *
 * IPVS is not in this kernel (LAB.md): keepalived exits FATAL when a config has virtual
 * servers or lvs_sync_daemon, so this copy of lab.yaml keeps lb1's VRRP part only.
 */

const isRoot = process.getuid?.() === 0
const SITE = 'aptest'
const dir = mkdtempSync(join(tmpdir(), 'hafw-aptest-'))
const stateDir = join(dir, 'state')
const env = { ...process.env, HAFW_STATE_DIR: stateDir }
const hafw = (args: string[], timeoutMs = 240_000) => exec(process.execPath, ['packages/cli/bin/run.js', ...args], { env, allowFail: true, timeoutMs })
const json = <T>(r: { stdout: string }): T => JSON.parse(r.stdout) as T

function inventory(name: string, edit: (s: string) => string = (s) => s): string {
  let s = readFileSync('inventory/lab.yaml', 'utf8').replace(/^site: lab$/m, `site: ${SITE}`)
  s = s.replace(', lvs_sync_daemon: true', '')
  s = s.slice(0, s.indexOf('    virtual_servers:'))
  const file = join(dir, name)
  writeFileSync(file, edit(s))
  return file
}

const node = (name: string, argv: string[]) => labExec(SITE, name, argv, { allowFail: true, timeoutMs: 30_000 })
const vipsOn = async (name: string) => [...(await node(name, ['ip', '-o', '-4', 'addr', 'show'])).stdout.matchAll(/inet (\S+)\//g)].map((m) => m[1]!)
const gen = async (name: string) => (await node(name, ['cat', '/var/lib/hafw/current'])).stdout.trim()
/** What shows a reload or restart: main PID start times and systemd's reload count in the journal. */
async function serviceMarks(name: string): Promise<string> {
  const show = await node(name, ['systemctl', 'show', '-p', 'ExecMainStartTimestampMonotonic', 'keepalived.service', 'conntrackd.service', 'hafw-firewall.service'])
  const reloads = await node(name, ['sh', '-c', "journalctl -o cat -u keepalived.service | grep -c '^Reload' || true"])
  return `${show.stdout.trim().replace(/\n/g, ' ')} reloads=${reloads.stdout.trim()}`
}

describe.skipIf(!isRoot)('apply: HA-aware rollout with on-host rollback in the lab', () => {
  let model: Model
  let overlay: Overlay
  const base = inventory('base.yaml')
  const vip = inventory('vip.yaml', (s) => s.replace('vips: [192.168.10.10/24, 192.168.10.60/24]', 'vips: [192.168.10.10/24, 192.168.10.60/24, 192.168.10.61/24]'))
  const lock = inventory('lock.yaml', (s) => s.replace('ownership: full }', 'ownership: full, ssh_from: [10.255.255.1/32] }'))
  const both = inventory('both.yaml', (s) => s.replace('ownership: full }', 'ownership: full, ssh_from: [198.18.0.0/15] }'))

  beforeAll(async () => {
    process.env.HAFW_STATE_DIR = stateDir
    model = await loadInventory(base)
    await labUp(model, () => undefined, AbortSignal.timeout(540_000))
    overlay = (await readOverlay(SITE))!
  })

  afterAll(async () => {
    await exec('ip', ['-n', `hafw-${SITE}-lb1b`, 'link', 'set', 'mgmt0', 'up'], { allowFail: true })
    await labDown(SITE, () => undefined).catch(() => undefined)
    await stopEmbeddedRedis(join(stateDir, 'redis')).catch(() => undefined)
    delete process.env.HAFW_STATE_DIR
    rmSync(dir, { recursive: true, force: true })
  })

  it('plan of fresh nodes lists every file and exits 2; apply refuses without --yes and without a terminal', async () => {
    const p = await hafw(['plan', base, '--json'])
    expect(p.code).toBe(2)
    const r = json<PlanResult>(p)
    expect(r.nodes.map((n) => n.node).sort()).toEqual(['fw1a', 'fw1b', 'lb1a', 'lb1b'])
    // Debian ships a default conntrackd.conf: replaced; everything else is new
    expect(r.nodes.every((n) => n.generation === null)).toBe(true)
    expect([...new Set(r.nodes.flatMap((n) => n.files.filter((f) => f.change !== 'create').map((f) => f.path)))]).toEqual(['/etc/conntrackd/conntrackd.conf'])
    expect(r.nodes.find((n) => n.node === 'fw1a')!.files.length).toBe(12)
    const refused = await hafw(['apply', base])
    expect(refused.code).toBe(1)
    expect(refused.stderr).toMatch(/no terminal to ask on; pass --yes/)
  })

  it('applies the lab inventory to fresh nodes: units enabled and running, fw1a MASTER, conntrackd sync up', async () => {
    const t0 = Date.now()
    const r = await hafw(['apply', base, '--yes', '--parallel', '2', '--confirm-timeout', '30', '--json'])
    expect(r.code, r.stderr).toBe(0)
    const s = json<ApplySummary>(r)
    expect(s.pairs.map((p) => [p.pair, p.result])).toEqual([['edge1', 'applied'], ['lb1', 'applied']])
    console.log(`first apply of 2 pairs (4 fresh nodes): ${((Date.now() - t0) / 1000).toFixed(1)} s\n${s.pairs.map((p) => `  ${p.pair}: ${p.detail}`).join('\n')}`)
    // standby first on a fresh pair: the lowest priority node
    expect(s.pairs[0]!.outcome!.order).toEqual(['fw1b', 'fw1a'])
    for (const n of ['fw1a', 'fw1b', 'lb1a', 'lb1b']) {
      expect((await node(n, ['systemctl', 'is-active', 'keepalived', 'hafw-firewall'])).stdout.split('\n').filter(Boolean)).toEqual(['active', 'active'])
      expect((await node(n, ['systemctl', 'is-enabled', 'hafw-firewall'])).stdout.trim()).toBe('enabled')
      expect(await gen(n)).toMatch(/^\d+$/)
    }
    expect(await vipsOn('fw1a')).toEqual(expect.arrayContaining(['192.168.10.10', '192.168.10.60', '192.168.11.10']))
    expect(await vipsOn('fw1b')).not.toContain('192.168.10.10')
    for (const n of ['fw1a', 'fw1b']) {
      expect((await node(n, ['systemctl', 'is-enabled', 'conntrackd'])).stdout.trim()).toBe('enabled')
      const st = (await node(n, ['conntrackd', '-C', '/etc/conntrackd/conntrackd.conf', '-s'])).stdout
      expect(Number(/(\d+)\s+Pckts recv/.exec(st)?.[1] ?? 0)).toBeGreaterThan(0)
    }
    const kept = (await node('fw1a', ['ls', `/var/lib/hafw/generations/${await gen('fw1a')}`])).stdout
    expect(kept).toMatch(/confirmed/)
    expect(kept).toMatch(/manifest\.json/)
  })

  it('re-applying the same inventory changes nothing and reloads nothing', async () => {
    const before = await Promise.all(['fw1a', 'fw1b', 'lb1a', 'lb1b'].map(async (n) => `${n} ${await gen(n)} ${await serviceMarks(n)}`))
    const p = await hafw(['plan', base])
    expect(p.code).toBe(0)
    expect(p.stdout).toMatch(/plan: no changes on 4 node\(s\)/)
    const r = await hafw(['apply', base, '--yes', '--parallel', '2', '--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(json<ApplySummary>(r).pairs.map((x) => x.result)).toEqual(['no changes', 'no changes'])
    const after = await Promise.all(['fw1a', 'fw1b', 'lb1a', 'lb1b'].map(async (n) => `${n} ${await gen(n)} ${await serviceMarks(n)}`))
    expect(after).toEqual(before)
  })

  it('a job whose pair lock was taken over meanwhile is refused by the nodes\' fence: nothing is staged or changed', async () => {
    const fenceOf = async (n: string) => Number((await node(n, ['cat', '/var/lib/hafw/fence'])).stdout.trim())
    const before = await Promise.all(['fw1a', 'fw1b'].map(async (n) => `${n} ${await gen(n)} ${await fenceOf(n)} ${await serviceMarks(n)}`))
    const seen = await fenceOf('fw1a')
    // every apply so far went through the queue and left its pair lock's token on the nodes
    expect(seen).toBeGreaterThan(1_700_000_000_000)
    const { model: m } = await loadInventoryForLab(vip)
    // the stale job: it still believes it holds edge1, with the token it got before the last apply
    const stale = { fence: { edge1: seen - 1 } }
    const err = await applyPair({ site: SITE, source: vip, pair: m.pairs.find((x) => x.name === 'edge1')! }, () => {}, AbortSignal.timeout(120_000), stale).catch((e: Error) => e)
    expect(err).toBeInstanceOf(Error)
    expect((err as Error).message).toMatch(new RegExp(`refused by the node's fence: a newer job changed it \\(fence ${seen} > this job's ${seen - 1}\\)`))
    const after = await Promise.all(['fw1a', 'fw1b'].map(async (n) => `${n} ${await gen(n)} ${await fenceOf(n)} ${await serviceMarks(n)}`))
    expect(after).toEqual(before)
    expect((await node('fw1a', ['sh', '-c', 'ls /var/lib/hafw/generations; ls -a /etc/keepalived'])).stdout).not.toMatch(/\.tmp|hafw-\d/)
    expect((await hafw(['plan', base, '--pair', 'edge1'])).code).toBe(0)
  })

  it('a VIP change rolled out while probe flows cross the pair resets no flow (plain, then with --handover)', async () => {
    const client = (await labProbes(SITE)).find((p) => p.role === 'client' && p.pair === 'edge1')!
    const dnat = model.pairs[0]!.nat.dnat[0]!
    const server = model.pairs[0]!.drill.probes!.server.address
    const spec = {
      targets: [
        { proto: 'tcp', host: dnat.dst, port: dnat.dport, flows: 4, path: 'dnat' },
        { proto: 'tcp', host: server, port: 7, flows: 4, path: 'forward' },
      ],
      intervalMs: 50,
      durationMs: 120_000,
    }
    const w = spawn('ip', ['netns', 'exec', client.netns, process.execPath, 'packages/drill/dist/witness.js', JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    w.stdout.on('data', (d: Buffer) => (out += d.toString()))
    const ended = new Promise<void>((r) => w.on('close', () => r()))
    try {
      await new Promise((r) => setTimeout(r, 2000))
      const a = await hafw(['apply', vip, '--pair', 'edge1', '--yes', '--confirm-timeout', '30', '--json'])
      expect(a.code, a.stderr).toBe(0)
      const sa = json<ApplySummary>(a).pairs[0]!
      expect(sa.outcome!.nodes.map((n) => [n.node, n.result, n.changed.sort()])).toEqual([
        ['fw1a', 'applied', ['/etc/iptables/rules.v4', '/etc/keepalived/keepalived.conf']],
        ['fw1b', 'applied', ['/etc/iptables/rules.v4', '/etc/keepalived/keepalived.conf']],
      ])
      expect(sa.outcome!.order).toEqual(['fw1b', 'fw1a'])
      expect(await vipsOn('fw1a')).toContain('192.168.10.61')
      const b = await hafw(['apply', base, '--pair', 'edge1', '--yes', '--handover', '--confirm-timeout', '30', '--json'])
      expect(b.code, b.stderr).toBe(0)
      expect(json<ApplySummary>(b).pairs[0]!.outcome!.handover).toBe(true)
      expect(await vipsOn('fw1a')).not.toContain('192.168.10.61')
      await new Promise((r) => setTimeout(r, 1000))
    } finally {
      w.kill('SIGTERM')
      await ended
    }
    const res = JSON.parse(out) as { flows: { path: string; received: number; reset: boolean; error?: string; maxGapMs: number }[] }
    console.log(`flows during VIP change + handover: ${res.flows.map((f) => `${f.path} ${f.received} echoes, worst gap ${f.maxGapMs} ms${f.reset ? ' RESET' : ''}`).join('; ')}`)
    expect(res.flows).toHaveLength(8)
    for (const f of res.flows) {
      expect(f.reset, JSON.stringify(f)).toBe(false)
      expect(f.error).toBeUndefined()
      expect(f.received).toBeGreaterThan(50)
      expect(f.maxGapMs).toBeLessThan(3000)
    }
  })

  it('a ruleset that locks out management SSH: the node restores itself when the confirm window ends, hafw reports it', async () => {
    const before = { fw1a: await gen('fw1a'), fw1b: await gen('fw1b') }
    const t0 = Date.now()
    const r = await hafw(['apply', lock, '--pair', 'edge1', '--yes', '--confirm-timeout', '20', '--no-early-rollback', '--json'])
    const ms = Date.now() - t0
    expect(r.code).toBe(1)
    const s = json<ApplySummary>(r).pairs[0]!
    expect(s.result).toBe('rolled back')
    expect(s.error).toMatch(/SSH: a new connection to fw1b fails/)
    expect(s.error).toMatch(/rolled back to generation \d+ by the node's own timer/)
    const fw1b = s.outcome!.nodes.find((n) => n.node === 'fw1b')!
    expect(fw1b.rollback).toMatchObject({ trigger: 'timer', ok: true, reachable: true })
    expect(String(fw1b.rollback!.current)).toBe(before.fw1b)
    // the active node was never touched; the standby is back where it was and reachable
    expect(s.outcome!.nodes.find((n) => n.node === 'fw1a')!.result).toBe('not started')
    expect({ fw1a: await gen('fw1a'), fw1b: await gen('fw1b') }).toEqual(before)
    expect((await hafw(['plan', base, '--pair', 'edge1'])).code).toBe(0)
    expect(ms).toBeLessThan(90_000)
    console.log(`lockout: detected and restored by the node's timer in ${(ms / 1000).toFixed(1)} s (confirm window 20 s)`)
    // the same lockout with the default early rollback: hafw starts the node's rollback at once
    const e = await hafw(['apply', lock, '--pair', 'edge1', '--yes', '--confirm-timeout', '60', '--json'])
    expect(e.code).toBe(1)
    expect(json<ApplySummary>(e).pairs[0]!.outcome!.nodes.find((n) => n.node === 'fw1b')!.rollback).toMatchObject({ trigger: 'hafw', ok: true, reachable: true })
    expect((await hafw(['plan', base, '--pair', 'edge1'])).code).toBe(0)
  })

  it('a changed host key is refused with both fingerprints; nothing is changed', async () => {
    const keyFile = join(dir, 'other_key')
    await exec('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', keyFile])
    const other = readFileSync(`${keyFile}.pub`, 'utf8').trim().split(/\s+/).slice(0, 2).join(' ')
    const kh = join(dir, 'known_hosts.changed')
    writeFileSync(kh, readFileSync(overlay.nodes.fw1a!.known_hosts, 'utf8').split('\n').map((l) => (l.startsWith(`${overlay.nodes.fw1a!.host} `) ? `${overlay.nodes.fw1a!.host} ${other}` : l)).join('\n'))
    const o2 = structuredClone(overlay)
    delete (o2.nodes.fw1a as { host_key?: string }).host_key
    o2.nodes.fw1a!.known_hosts = kh
    writeFileSync(join(dir, 'overlay.changed.json'), JSON.stringify(o2))
    const before = await gen('fw1a')
    for (const cmd of [['plan', vip], ['apply', vip, '--yes']]) {
      const r = await hafw([...cmd, '--pair', 'edge1', '--overlay', join(dir, 'overlay.changed.json')])
      expect(r.code).toBe(1)
      expect(r.stderr).toMatch(/HOST KEY CHANGED for 198\.1[89]\.\d+\.\d+/)
      expect(r.stderr).toContain(overlay.nodes.fw1a!.host_key)
    }
    expect(await gen('fw1a')).toBe(before)
    expect(await vipsOn('fw1a')).not.toContain('192.168.10.61')
  })

  it('an unreachable node fails its pair with a clear error; the other pair is rolled out', async () => {
    const lb = { lb1a: await gen('lb1a'), lb1b: await gen('lb1b') }
    await exec('ip', ['-n', `hafw-${SITE}-lb1b`, 'link', 'set', 'mgmt0', 'down'])
    try {
      const r = await hafw(['apply', both, '--yes', '--parallel', '2', '--confirm-timeout', '30', '--json'])
      expect(r.code).toBe(1)
      const s = json<ApplySummary>(r)
      const byPair = Object.fromEntries(s.pairs.map((p) => [p.pair, p]))
      expect(byPair.edge1!.result).toBe('applied')
      expect(byPair.lb1!.result).toBe('failed')
      expect(byPair.lb1!.error).toMatch(/pair lb1: nothing changed, a node cannot be reached: lb1b \(root@198\.1[89]\.\d+\.\d+:22\): (host unreachable|connection timed out|timed out)/)
      expect({ lb1a: await gen('lb1a'), lb1b: await gen('lb1b') }).toEqual(lb)
    } finally {
      await exec('ip', ['-n', `hafw-${SITE}-lb1b`, 'link', 'set', 'mgmt0', 'up'])
    }
    const p = await hafw(['plan', both, '--json'])
    expect(p.code).toBe(2)
    expect(json<PlanResult>(p).nodes.filter((n) => n.changes).map((n) => n.node).sort()).toEqual(['lb1a', 'lb1b'])
  })

  it('rollback --pair puts the pair back on its previous generation', async () => {
    const r = await hafw(['rollback', both, '--pair', 'edge1', '--confirm-timeout', '30', '--json'])
    expect(r.code, r.stderr).toBe(0)
    expect(json<ApplySummary>(r).pairs[0]!.result).toBe('applied')
    // edge1 is back on the configuration before both.yaml
    expect((await hafw(['plan', base, '--pair', 'edge1'])).code).toBe(0)
  })
})
