import { describe, expect, it } from 'vitest'
import { createServer, type Socket } from 'node:net'
import { createSocket } from 'node:dgram'
import { readFileSync } from 'node:fs'
import { exec } from '@hafw/core'
import { loadInventory } from '@hafw/inventory'
import type { LabProbe } from '@hafw/lab'
import { parseAddrs } from '@hafw/verify'
import {
  countByFamily, filterAllows, gapBound, judge, judgeLive, parseConntrackTcp, parseJournal, parseMonitorLine, phaseFlows, planFault, planWitnesses,
  runDrillJob, runWitness, skewMs, SSH_DEVICE_SCRIPT, witnessFlows, type PhaseResult, type WitnessResult, type WitnessStatus,
} from '@hafw/drill'

/*
 * The drill's pure parts: bounds, parsers of what the nodes print, the witness plan from the
 * lab's probes, the phase windows and the verdict; and the witness itself against real TCP and
 * UDP echo servers on loopback (a reset and a stall made on purpose).
 */

const lab = await loadInventory('inventory/lab.yaml')
const edge = lab.pairs.find((p) => p.name === 'edge1')!
const fw1 = (await loadInventory('test/fixtures/inventory/good/dualstack.yaml')).pairs[0]!
const probe = (p: Partial<LabProbe> & Pick<LabProbe, 'name' | 'role' | 'ip' | 'segment'>): LabProbe => ({
  netns: `ns-${p.name}`, address: `${p.ip}/24`, pair: 'edge1', subnet: '', ports: [7], running: true, ...p,
})
const probes: LabProbe[] = [
  probe({ name: 'client-edge1-outside', role: 'client', ip: '192.168.10.100', segment: 'outside', gateway: '192.168.10.10' }),
  probe({ name: 'server-192.168.11.60', role: 'server', ip: '192.168.11.60', segment: 'inside', gateway: '192.168.11.10', ports: [7, 25, 5353] }),
]

describe('bounds', () => {
  it("keepalived's skew time and the bound per mode; drill.max_gap_ms wins", () => {
    expect(skewMs(1, 100)).toBe(609)
    expect(skewMs(1, 150)).toBe(414)
    expect(gapBound(edge, 'graceful', 'fw1b').ms).toBe(609 + 500)
    expect(gapBound(edge, 'crash', 'fw1b')).toMatchObject({ ms: 3000 + 609 + 500, why: expect.stringMatching(/3 x advert_int \(1000 ms\) \+ skew time of fw1b \(609 ms\)/) })
    expect(gapBound(edge, 'link', 'fw1a').ms).toBe(3000 + 414 + 500)
    expect(gapBound({ ...edge, drill: { max_gap_ms: { crash: 2500 } } }, 'crash', 'fw1b')).toMatchObject({ ms: 2500, why: expect.stringMatching(/drill\.max_gap_ms\.crash/) })
  })
})

describe('what the nodes print', () => {
  it('ip -ts -o monitor address lines, added and deleted, with microseconds', () => {
    expect(parseMonitorLine('[2026-11-22T01:07:38.230539] 5: ens5    inet 192.168.99.1/32 scope global ens5\\       valid_lft forever')).toEqual({ t: Date.parse('2026-11-22T01:07:38.230Z') + 0.539, ip: '192.168.99.1', deleted: false })
    expect(parseMonitorLine('[2026-11-22T01:07:38.232674] Deleted 5: ens5    inet 192.168.99.1/32 scope global ens5')).toMatchObject({ ip: '192.168.99.1', deleted: true })
    expect(parseMonitorLine('[2026-11-22T01:07:38.232674] 5: ens5    inet6 fe80::1/64')).toBeNull()
  })

  it("keepalived's journal: who entered which state, when", () => {
    const j = parseJournal([
      '1795309205.626299 fw1b Keepalived_vrrp[270]: (VI_IN) Entering MASTER STATE',
      '1795309205.626808 fw1b Keepalived_vrrp[270]: VRRP_Group(G1) Syncing instances to MASTER state',
      '1795309205.626844 fw1b Keepalived_vrrp[270]: (VI_OUT) Entering MASTER STATE',
      '1795309318.195643 fw1a Keepalived_vrrp[944]: (VI_OUT) Entering BACKUP STATE (init)',
    ].join('\n'))
    expect(j).toEqual([
      { t: 1795309205626, instance: 'VI_IN', state: 'MASTER' },
      { t: 1795309205627, instance: 'VI_OUT', state: 'MASTER' },
      { t: 1795309318196, instance: 'VI_OUT', state: 'BACKUP' },
    ])
  })

  it('conntrack -L with accounting: forwarded established flows are the live witnesses', () => {
    const text = [
      'tcp      6 431999 ESTABLISHED src=192.168.10.100 dst=192.168.10.60 sport=40000 dport=25 packets=10 bytes=600 src=192.168.11.60 dst=192.168.10.100 sport=25 dport=40000 packets=9 bytes=500 [ASSURED] mark=0 use=1',
      'tcp      6 431999 ESTABLISHED src=198.18.2.1 dst=198.18.2.10 sport=41786 dport=22 src=198.18.2.10 dst=198.18.2.1 sport=22 dport=41786 [ASSURED] mark=0 use=1',
      'tcp      6 10 CLOSE src=192.168.10.100 dst=192.168.11.60 sport=40001 dport=7 packets=1 bytes=40 src=192.168.11.60 dst=192.168.10.100 sport=7 dport=40001 packets=0 bytes=0 mark=0 use=1',
      'tcp      6 431999 ESTABLISHED src=192.168.10.100 dst=192.168.11.60 sport=40002 dport=7 src=192.168.11.60 dst=192.168.10.100 sport=7 dport=40002 [ASSURED] mark=0 use=1',
    ].join('\n')
    const all = parseConntrackTcp(text)
    expect(all).toHaveLength(4)
    expect(all[0]).toEqual({ src: '192.168.10.100', dst: '192.168.10.60', sport: 40000, dport: 25, state: 'ESTABLISHED', packets: 19, replySrc: '192.168.11.60' })
    expect(all[3]!.packets).toBeNull()
    const w = witnessFlows(all, new Set(['198.18.2.10', '192.168.10.11', '192.168.10.60']), 100)
    expect(w.map((f) => f.sport)).toEqual([40000, 40002])
    // after the failover: one carries packets, one is gone
    const out = judgeLive(w, [all[0]!])
    expect(out).toMatchObject({ total: 2, carrying: 1, idle: 0, reset: 1 })
    expect(out.per_flow[1]).toMatchObject({ reset: true, error: "not in the new active node's table", path: 'live' })
  })
})

describe('witness plan', () => {
  it("lab.yaml's edge1: TCP and UDP through the DNAT and forwarded, spread evenly", () => {
    const plan = planWitnesses(edge, probes, 20)
    if (!('client' in plan)) throw new Error(plan.none)
    expect(plan.client.ip).toBe('192.168.10.100')
    expect(plan.targets).toEqual([
      { proto: 'tcp', host: '192.168.10.60', port: 25, path: 'dnat', flows: 5 },
      { proto: 'tcp', host: '192.168.11.60', port: 7, path: 'forward', flows: 5 },
      { proto: 'udp', host: '192.168.10.60', port: 5353, path: 'dnat', flows: 5 },
      { proto: 'udp', host: '192.168.11.60', port: 5353, path: 'forward', flows: 5 },
    ])
    const three = planWitnesses(edge, probes, 3)
    expect('client' in three && three.targets.map((t) => t.flows)).toEqual([1, 1, 1])
  })

  it('follows the filter: a port it does not allow is no forwarded witness; no path at all says why', () => {
    expect(filterAllows(edge, { in: 'outside', out: 'inside', proto: 'tcp', src: '192.168.10.100', dst: '192.168.11.60', dport: 7 })).toBe(true)
    expect(filterAllows(edge, { in: 'outside', out: 'inside', proto: 'udp', src: '192.168.10.100', dst: '192.168.11.60', dport: 7 })).toBe(false)
    const closed = { ...edge, nat: { dnat: [], snat: [] }, filter: { ...edge.filter, allow: [] } }
    expect(planWitnesses(closed, probes, 20)).toEqual({ none: expect.stringMatching(/no witness path through pair edge1/) })
    expect(planWitnesses(edge, probes.filter((p) => p.role === 'server'), 20)).toEqual({ none: 'no probe client in front of pair edge1' })
  })
})

describe('faults', () => {
  const fw1a = edge.nodes[0]
  it('crash keeps the link hafw reaches the node through; link and partition refuse it', () => {
    const crash = planFault(edge, 'crash', fw1a, '/etc/conntrackd/conntrackd.conf', { sshDevice: 'ens3' })
    expect(crash.devices).toEqual(['ens4', 'ens5'])
    expect(crash.notes).toEqual(['crash: ens3 of fw1a stays up: hafw reaches the node through it'])
    expect(crash.inject).toMatch(/pkill -STOP -x keepalived; pkill -STOP -x conntrackd; systemctl kill --signal=SIGKILL keepalived.service conntrackd.service \|\| \{ pkill -KILL -x keepalived; pkill -KILL -x conntrackd; \}/)
    // the node comes back as a rebooted host would: no stale VIPs, conntrackd's lock gone
    expect(crash.settle).toMatch(/ip addr del '?192\.168\.10\.60\/24'? dev '?ens3'?/)
    expect(crash.settle).toMatch(/rm -f '?\/var\/lock\/conntrack\.lock'?/)
    expect(crash.clear.startsWith(crash.settle!)).toBe(true)
    expect(() => planFault(edge, 'link', fw1a, null, { link: 'outside', sshDevice: 'ens3' })).toThrow(/ens3 carries hafw's SSH session/)
    expect(() => planFault(edge, 'link', fw1a, null, { link: 'nosuch' })).toThrow(/fw1a has no interface "nosuch"/)
    expect(planFault(edge, 'link', fw1a, null, {}).what).toBe('link ens4 down')
    expect(planFault(edge, 'partition', fw1a, null, { sshDevice: 'ens3' }).what).toBe('drop VRRP (IP protocol 112) in and out on ens4')
    const nft = planFault({ ...edge, firewall: { ...edge.firewall, backend: 'nftables' } }, 'partition', fw1a, null, {})
    expect(nft.inject).toMatch(/table inet hafw_drill/)
    expect(nft.clear).toMatch(/nft delete table inet hafw_drill/)
  })
})

/** A witness record: one flow per entry, times in ms. */
function record(flows: Partial<WitnessResult['flows'][0]>[]): WitnessResult {
  return {
    startedAt: 0,
    endedAt: 100_000,
    intervalMs: 20,
    flows: flows.map((f, id) => ({ id, proto: 'tcp', path: 'dnat', target: '192.168.10.60:25', sent: 100, received: 100, lost: 0, maxGapMs: 0, gapStart: 0, gapEnd: 0, reset: false, connected: true, gaps: [], lostAt: [], ...f })),
  }
}

describe('phases and verdict', () => {
  const w = record([
    { gaps: [{ start: 10_500, end: 13_600 }, { start: 40_600, end: 40_700 }] },
    { proto: 'udp', gaps: [{ start: 10_400, end: 13_300 }], lostAt: [10_500, 10_520, 40_650] },
    { reset: true, resetAt: 40_610, error: 'ECONNRESET' },
    { reset: true, resetAt: 5_000 },
    { gaps: [{ start: 60_000, end: 99_800 }] },
  ])
  const failover = phaseFlows(w, { start: 10_000, end: 40_000, takeover: 13_000 })
  const failback = phaseFlows(w, { start: 40_000, end: 100_000, takeover: 40_650 })

  it('cuts gaps, resets and losses into the phase they happened in', () => {
    // flow 3 died before the drill: no witness of either phase
    expect(failover.flows).toEqual({ total: 4, kept: 4, reset: 0, lost_messages: 2 })
    // the data plane: the UDP flow's stall; TCP waits for its retransmission
    expect(failover.gap_ms).toBe(2900)
    expect(failover.tcpGap).toBe(3100)
    expect(failover.firstPacket).toBe(13_300)
    expect(failover.allFlowing).toBe(13_600)
    expect(failover.per_flow[0]).toMatchObject({ max_gap_ms: 3100, gap_start: 10_500, gap_end: 13_600 })
    // no stall in a phase: the flow's gap is its interval
    expect(failover.per_flow[2]).toMatchObject({ max_gap_ms: 20, gap_start: 0, reset: false })
    expect(failback.flows).toEqual({ total: 4, kept: 2, reset: 1, lost_messages: 1 })
    expect(failback.per_flow[2]).toMatchObject({ reset: true, error: 'ECONNRESET' })
    // silent from 60 s to the end: never recovered
    expect(failback.stuck.map((f) => f.id)).toEqual([4])
  })

  it('gaps the witness\'s own stalls explain (CPU on the probe host) are not data-plane gaps; an outage is kept whole', () => {
    // a 100 ms stall of the witness process 5 s after the takeover, and one inside the outage
    const r = { ...record([
      { proto: 'udp', gaps: [{ start: 10_400, end: 10_430 }, { start: 15_010, end: 15_115 }] },
      { proto: 'udp', gaps: [{ start: 10_390, end: 10_440 }, { start: 15_000, end: 15_120 }] },
      { proto: 'udp', gaps: [{ start: 20_000, end: 23_300 }] },
    ]), stalls: [{ start: 15_020, end: 15_110 }, { start: 21_000, end: 21_400 }] }
    const f = phaseFlows(r, { start: 10_000, end: 30_000, takeover: 10_420 })
    expect(f.gap_ms).toBe(3300)
    expect(f.per_flow.map((x) => x.max_gap_ms)).toEqual([30, 50, 3300])
    expect(f.selfStalls).toEqual({ count: 2, worstMs: 400 })
    // without the record of its stalls (older witnesses): counted as before
    expect(phaseFlows({ ...r, stalls: undefined }, { start: 10_000, end: 20_000, takeover: 10_420 }).per_flow.map((x) => x.max_gap_ms)).toEqual([105, 120, 20])
  })

  it('a flow back just before the next trigger is not stuck; one silent across it is', () => {
    // the lab's link drill under load: TCP back with its 6.6 s retransmission 830 ms before the failback
    const r = { ...record([
      { gaps: [{ start: 10_000, end: 16_600 }] },
      { gaps: [{ start: 10_000, end: 19_000 }] },
      // a short stall across the trigger: not silent for a second by the end
      { gaps: [{ start: 17_200, end: 17_700 }] },
      { gaps: [{ start: 30_000, end: 39_900 }] },
    ]), endedAt: 40_400, sendEndedAt: 39_900 }
    expect(phaseFlows(r, { start: 10_000, end: 17_430, takeover: 13_200 }).stuck.map((f) => f.id)).toEqual([1])
    // the last phase: a gap closed at the last send is open; recovered 100 ms before it is not
    expect(phaseFlows(r, { start: 17_430, end: 40_400, takeover: null }).stuck.map((f) => f.id)).toEqual([3])
    expect(phaseFlows({ ...r, flows: [{ ...r.flows[3]!, gaps: [{ start: 30_000, end: 39_800 }] }] }, { start: 17_430, end: 40_400, takeover: null }).stuck).toEqual([])
  })

  it('pass only without resets, within the bound, verified; fail says which and why', () => {
    const phase = (name: string, f: typeof failover, bound: number): PhaseResult => ({
      phase: name, from: 'fw1a', to: 'fw1b', failover_ms: 600, gap_ms: f.gap_ms, commit: { entries: 20, ms: 10 }, flows: f.flows, per_flow: f.per_flow, timeline: [], converged: true, bound_ms: bound,
    })
    const ok = { ok: true, detail: 'converged' }
    const pass = judge([{ phase: phase('failover', failover, 4109), expectTakeover: true, takeover: true, verify: ok, boundWhy: '', measured: 'probes', stuck: [] }], null)
    expect(pass).toEqual({ verdict: 'pass', reasons: ['no witness flow was reset (0 of 4, failover)', 'worst data-plane gap 2900 ms during failover is within the bound of 4109 ms', 'verify passed after failover'] })
    const fail = judge(
      [
        { phase: phase('failover', failover, 1109), expectTakeover: true, takeover: false, verify: { ok: false, detail: 'NOT converged; missing 3' }, boundWhy: '', measured: 'probes', stuck: [] },
        { phase: phase('failback', failback, 3914), expectTakeover: true, takeover: true, verify: ok, boundWhy: '', measured: 'probes', stuck: failback.stuck },
      ],
      null,
    )
    expect(fail.verdict).toBe('fail')
    expect(fail.reasons).toEqual([
      'failover: fw1b did not take the VIPs over',
      'worst data-plane gap 2900 ms during failover exceeds the bound of 1109 ms (flow #1 udp dnat 192.168.10.60:25)',
      'verify failed after failover: NOT converged; missing 3',
      '1 of 4 witness flows were reset during failback (TCP dnat 192.168.10.60:25)',
      '1 witness flows had not recovered when failback ended (TCP dnat 192.168.10.60:25)',
    ])
  })
})

describe('the witness process', () => {
  it('counts echoes, records a stall, and tells a reset from a stall (real sockets on loopback)', async () => {
    const conns: Socket[] = []
    let hold = false
    // TCP: echoes held back during the stall and sent after it (the bytes are not lost)
    const held: [Socket, Buffer][] = []
    const tcp = createServer((s) => {
      conns.push(s)
      s.on('error', () => {})
      s.on('data', (d) => (hold ? held.push([s, d]) : s.write(d)))
    })
    await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r))
    const udp = createSocket('udp4')
    udp.on('message', (m, from) => !hold && udp.send(m, from.port, from.address))
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r))
    const tcpPort = (tcp.address() as { port: number }).port
    const udpPort = udp.address().port
    const ready: number[] = []
    let status: (() => WitnessStatus) | undefined
    const run = runWitness(
      { targets: [{ proto: 'tcp', host: '127.0.0.1', port: tcpPort, flows: 2, path: 'dnat' }, { proto: 'udp', host: '127.0.0.1', port: udpPort, flows: 1, path: 'forward' }], intervalMs: 10, durationMs: 1500 },
      undefined,
      { ready: (f) => ready.push(...f.map((x) => x.localPort!)), status: (get) => (status = get) },
    )
    await new Promise((r) => setTimeout(r, 300))
    hold = true // a 300 ms stall for every flow
    await new Promise((r) => setTimeout(r, 300))
    // the status a drill waits on: every flow silent for ~300 ms now
    const st = status!()
    expect(st.lastEcho.every((t) => st.now - t >= 250)).toBe(true)
    expect(st.reset).toEqual([false, false, false])
    hold = false
    for (const [s, d] of held.splice(0)) s.write(d)
    await new Promise((r) => setTimeout(r, 300))
    conns[0]!.resetAndDestroy() // a RST for the first TCP flow
    const w = await run
    tcp.close()
    udp.close()
    expect(ready).toHaveLength(3)
    const [a, b, u] = w.flows as [WitnessResult['flows'][0], WitnessResult['flows'][0], WitnessResult['flows'][0]]
    expect(a).toMatchObject({ proto: 'tcp', reset: true })
    // Node reports the RST as ECONNRESET, or now and then (1 run in 25 with the machine busy) as
    // a close without an error: the witness counts both as a reset; the drill says "closed by the peer".
    expect([undefined, 'ECONNRESET']).toContain(a.error)
    expect(a.resetAt).toBeGreaterThan(w.startedAt + 800)
    expect(b).toMatchObject({ proto: 'tcp', reset: false })
    for (const f of [b, u]) {
      expect(f.maxGapMs).toBeGreaterThanOrEqual(280)
      expect(f.gaps!.some((g) => g.end - g.start >= 280)).toBe(true)
      expect(f.received).toBeGreaterThan(50)
    }
    // TCP resends what the stall held back; UDP loses it, with the send times
    expect(b.lost).toBe(0)
    expect(u.lost).toBeGreaterThan(15)
    expect(u.lostAt!.length).toBe(u.lost)
  })
})

describe('job input', () => {
  it('refuses a bad mode or a missing pair with the field named, before reaching any node', async () => {
    await expect(runDrillJob({ file: 'inventory/lab.yaml', pair: 'edge1', mode: 'reboot' as never }, () => {}, AbortSignal.timeout(5000))).rejects.toThrow(/mode: expected one of graceful, crash, link, partition, found "reboot"/)
    await expect(runDrillJob({ file: 'inventory/lab.yaml', pair: 'nope', mode: 'crash' }, () => {}, AbortSignal.timeout(5000))).rejects.toThrow(/no pair "nope" \(pairs: edge1, lb1\)/)
    await expect(runDrillJob({ file: 'inventory/lab.yaml', pair: 'edge1', mode: 'crash', probeFlows: -1 }, () => {}, AbortSignal.timeout(5000))).rejects.toThrow(/probeFlows: expected an integer 0\.\.5000, found -1/)
  })
})

/*
 * Dual stack: the dual-stack fixture pair with dual-stack probes, and what the nodes print for
 * IPv6 (test/fixtures/conntrack/ipv6-*: real output of a dual-stack pair, make-samples-ipv6.sh).
 */
describe('IPv6 witnesses', () => {
  const CT = 'test/fixtures/conntrack/'
  const read = (f: string) => readFileSync(CT + f, 'utf8')
  const probes6: LabProbe[] = [
    probe({ name: 'client-fw1-outside', role: 'client', ip: '192.168.10.100', segment: 'outside', gateway: '192.168.10.10', pair: 'fw1', address6: 'fd00:10::100/64', ip6: 'fd00:10::100', gateway6: 'fd00:10::10' }),
    probe({ name: 'server-192.168.11.60', role: 'server', ip: '192.168.11.60', segment: 'inside', gateway: '192.168.11.10', pair: 'fw1', ports: [7, 25], address6: 'fd00:11::60/64', ip6: 'fd00:11::60', gateway6: 'fd00:11::10' }),
  ]

  it('ip -ts -o monitor address: IPv6 VIPs in canonical text; tentative ones are not usable yet; link-local ones are no VIPs', () => {
    const at = Date.parse('2026-12-02T15:36:53.101Z') + 0.233
    expect(parseMonitorLine('[2026-12-02T15:36:53.101233] 3: out0    inet6 fd00:20::60/64 scope global nodad \\       valid_lft forever preferred_lft forever')).toEqual({ t: at, ip: 'fd00:20::60', deleted: false })
    expect(parseMonitorLine('[2026-12-02T15:36:53.101233] Deleted 3: out0    inet6 FD00:20:0::60/64 scope global nodad \\       valid_lft forever preferred_lft forever')).toMatchObject({ ip: 'fd00:20::60', deleted: true })
    expect(parseMonitorLine('[2026-12-02T15:36:53.101233] 3: out0    inet6 fd00:20::60/64 scope global tentative \\       valid_lft forever preferred_lft forever')).toEqual({ t: at, ip: 'fd00:20::60', deleted: false, tentative: true })
    expect(parseMonitorLine('[2026-12-02T15:36:53.101233] 3: out0    inet6 fe80::5cf1:69ff:fea1:f88/64 scope link \\       valid_lft forever preferred_lft forever')).toBeNull()
    // a route or link event on the same monitor is no address
    expect(parseMonitorLine('[2026-12-02T15:36:53.101233] 3: out0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500')).toBeNull()
  })

  it('conntrack -L of both families: forwarded IPv6 flows are live witnesses, the node\'s own are not', () => {
    const all = parseConntrackTcp(read('ipv6-kernel.txt'))
    expect(all.map((f) => f.sport).sort()).toEqual([41001, 41002, 41003, 41004, 41006, 41011])
    expect(all.find((f) => f.sport === 41002)).toEqual({ src: 'fd00:10::100', dst: 'fd00:10::60', sport: 41002, dport: 8080, state: 'ESTABLISHED', packets: null, replySrc: 'fd00:20::7' })
    // the node's own addresses, both families, from `ip -o addr show` on it (VIPs included)
    const local = new Set(parseAddrs(read('ipv6-addr-active.txt')).map((a) => a.ip))
    expect(local).toContain('fd00:10::60')
    const w = witnessFlows(all, local, 100)
    // 41004 is TIME_WAIT; 41006 goes to fd00:10::11, the node itself
    expect(w.map((f) => f.sport).sort()).toEqual([41001, 41002, 41003, 41011])
    const out = judgeLive(w, w.filter((f) => f.sport !== 41003))
    expect(out).toMatchObject({ total: 4, reset: 1 })
    expect(out.per_flow.find((f) => f.reset)).toMatchObject({ family: 6, target: '[fd00:10::100]:41003 -> [fd00:20::7]:9000' })
    expect(out.per_flow.find((f) => f.target.startsWith('192.'))).toMatchObject({ family: 4, target: '192.168.10.100:41011 -> 192.168.20.7:443' })
    expect(countByFamily(out.per_flow)).toMatchObject({ ipv4: { total: 1, reset: 0 }, ipv6: { total: 3, reset: 1, kept: 2 } })
  })

  it('the SSH device is found for either family of $SSH_CONNECTION', async () => {
    expect(SSH_DEVICE_SCRIPT).not.toMatch(/ip -o -4/)
    const addrs = read('ipv6-addr-active.txt')
    const run = async (conn: string) =>
      exec('sh', ['-c', SSH_DEVICE_SCRIPT.replace('ip -o addr show', 'cat "$ADDRS"')], { env: { ...process.env, SSH_CONNECTION: conn, ADDRS: CT + 'ipv6-addr-active.txt' } })
    expect(addrs).toContain('inet6 fd00:20::11/64')
    expect((await run('fd00:20::7 50000 fd00:20::11 22')).stdout.trim()).toBe('out0')
    expect((await run('192.168.10.100 50000 192.168.10.11 22')).stdout.trim()).toBe('in0')
  })

  it('plans IPv4 and IPv6 witnesses through the DNAT (NAT66) and forwarded, following each family\'s rules', () => {
    const plan = planWitnesses(fw1, probes6, 20)
    if (!('client' in plan)) throw new Error(plan.none)
    expect(plan.targets).toEqual([
      { proto: 'tcp', host: '192.168.10.60', port: 25, path: 'dnat', flows: 5 },
      { proto: 'tcp', host: 'fd00:10::60', port: 25, path: 'dnat', flows: 5 },
      { proto: 'tcp', host: '192.168.11.60', port: 25, path: 'forward', flows: 5 },
      { proto: 'tcp', host: 'fd00:11::60', port: 25, path: 'forward', flows: 5 },
    ])
    expect(plan.describe).toBe('from 192.168.10.100 and fd00:10::100 (client-fw1-outside): 5 TCP through the DNAT on 192.168.10.60:25, 5 TCP through the DNAT on [fd00:10::60]:25, 5 TCP forwarded to 192.168.11.60:25, 5 TCP forwarded to [fd00:11::60]:25')
    // a rule is one family: the IPv6 allow rule lets no IPv4 flow through and the other way round
    expect(filterAllows(fw1, { in: 'outside', out: 'inside', proto: 'tcp', src: 'fd00:10::100', dst: 'fd00:11::60', dport: 25 })).toBe(true)
    expect(filterAllows(fw1, { in: 'outside', out: 'inside', proto: 'tcp', src: 'fd00:10::100', dst: 'fd00:11::61', dport: 25 })).toBe(false)
    // a rule without addresses (icmp from inside) is in both families' rulesets
    expect(filterAllows(fw1, { in: 'inside', out: 'outside', proto: 'icmp', src: 'fd00:11::60', dst: 'fd00:10::100', dport: 0 })).toBe(true)
    // prefixes of the other family never match
    expect(filterAllows(fw1, { in: 'inside', out: 'outside', proto: 'tcp', src: '192.168.11.60', dst: '192.168.10.100', dport: 80 })).toBe(true)
    expect(filterAllows(fw1, { in: 'inside', out: 'outside', proto: 'tcp', src: 'fd00:12::60', dst: 'fd00:10::100', dport: 80 })).toBe(false)
  })

  it('IPv4 only when the client has no IPv6 address, or the server no IPv6 route through the pair', () => {
    const v4client = probes6.map((p) => (p.role === 'client' ? { ...p, address6: undefined, ip6: undefined, gateway6: undefined } : p))
    const a = planWitnesses(fw1, v4client, 8)
    expect('client' in a && a.targets.map((t) => t.host)).toEqual(['192.168.10.60', '192.168.11.60'])
    // the server's IPv6 default route is not a VIP of the pair: replies would bypass it
    const elsewhere = probes6.map((p) => (p.role === 'server' ? { ...p, gateway6: 'fd00:11::1' } : p))
    const b = planWitnesses(fw1, elsewhere, 6)
    expect('client' in b && b.targets.map((t) => `${t.path} ${t.host}`)).toEqual(['dnat 192.168.10.60', 'dnat fd00:10::60', 'forward 192.168.11.60'])
  })

  it('partition drops VRRP of both families on a pair with IPv6 instances', () => {
    const fw1a = fw1.nodes[0]
    const ipt = planFault(fw1, 'partition', fw1a, null, { link: 'inside' })
    expect(ipt.what).toBe('drop VRRP (IP protocol 112, IPv4 and IPv6) in and out on ens4')
    for (const t of ['iptables', 'ip6tables']) {
      expect(ipt.inject).toContain(`${t} -w -I INPUT 1 -i ens4 -p 112 -j DROP`)
      expect(ipt.clear).toContain(`while ${t} -w -C OUTPUT -o ens4 -p 112 -j DROP 2>/dev/null; do ${t} -w -D OUTPUT -o ens4 -p 112 -j DROP; done`)
    }
    const nft = planFault({ ...fw1, firewall: { ...fw1.firewall, backend: 'nftables' } }, 'partition', fw1a, null, { link: 'inside' })
    // no family qualifier: in the inet table this is VRRP of IPv4 and IPv6
    expect(nft.inject).toContain('iifname "ens4" meta l4proto 112 drop;')
    expect(nft.inject).toContain('oifname "ens4" meta l4proto 112 drop;')
    expect(nft.inject).not.toMatch(/ip protocol|nfproto/)
    // an IPv4-only pair keeps its IPv4-only rules
    expect(planFault(edge, 'partition', edge.nodes[0], null, {}).inject).not.toContain('ip6tables')
  })

  it('counts and judges each family apart', () => {
    const w = record([
      { target: '192.168.10.60:25', family: 4 },
      { target: '[fd00:10::60]:25', family: 6, gaps: [{ start: 10_400, end: 11_000 }] },
      { target: '[fd00:11::60]:25', family: 6, proto: 'udp', gaps: [{ start: 10_400, end: 10_700 }], lostAt: [10_450, 10_500] },
      // a record from before IPv6 witnesses: the family follows the target
      { target: '192.168.11.60:25', proto: 'udp', gaps: [{ start: 10_300, end: 10_500 }] },
    ])
    const f = phaseFlows(w, { start: 10_000, end: 40_000, takeover: 10_500 })
    expect(f.per_flow.map((x) => x.family)).toEqual([4, 6, 6, 4])
    expect(f.byFamily).toEqual({
      ipv4: { total: 2, kept: 2, reset: 0, lost_messages: 0, gap_ms: 200 },
      ipv6: { total: 2, kept: 2, reset: 0, lost_messages: 2, gap_ms: 300 },
    })
    expect(f.flows).toEqual({ total: 4, kept: 4, reset: 0, lost_messages: 2 })
    const phase: PhaseResult = { phase: 'failover', from: 'fw1a', to: 'fw1b', failover_ms: 500, gap_ms: f.gap_ms, commit: { entries: 4, ms: 5 }, flows: f.flows, by_family: f.byFamily, per_flow: f.per_flow, timeline: [], converged: true, bound_ms: 1109 }
    const ok = judge([{ phase, expectTakeover: true, takeover: true, verify: { ok: true, detail: '' }, boundWhy: '', measured: 'probes', stuck: [] }], null)
    expect(ok.reasons).toEqual([
      'no witness flow was reset (0 of 4: IPv4 0 of 2, IPv6 0 of 2; failover)',
      'worst data-plane gap 300 ms (IPv4 200 ms, IPv6 300 ms) during failover is within the bound of 1109 ms',
      'verify passed after failover',
    ])
    // an IPv6 flow reset: the family is named; a phase without by_family (older reports) is counted from per_flow
    const reset = { ...phase, flows: { ...phase.flows, kept: 3, reset: 1 }, per_flow: phase.per_flow.map((x) => (x.id === 1 ? { ...x, reset: true } : x)) }
    delete reset.by_family
    expect(judge([{ phase: reset, expectTakeover: true, takeover: true, verify: null, boundWhy: '', measured: 'probes', stuck: [] }], null).reasons).toEqual([
      '1 of 4 (IPv4 0 of 2, IPv6 1 of 2) witness flows were reset during failover (TCP dnat [fd00:10::60]:25)',
    ])
  })

  it('runs IPv4 and IPv6 flows side by side, each from its own bound address (real sockets on loopback)', async () => {
    const servers = await Promise.all(
      (['127.0.0.1', '::1'] as const).map(async (host) => {
        const peers: string[] = []
        const tcp = createServer((sock) => {
          peers.push(sock.remoteAddress!)
          sock.on('error', () => {})
          sock.pipe(sock)
        })
        await new Promise<void>((r) => tcp.listen(0, host, r))
        const udp = createSocket(host === '::1' ? 'udp6' : 'udp4')
        udp.on('message', (m, from) => {
          peers.push(from.address)
          udp.send(m, from.port, from.address)
        })
        await new Promise<void>((r) => udp.bind(0, host, r))
        return { host, tcp, udp, peers, tcpPort: (tcp.address() as { port: number }).port, udpPort: udp.address().port }
      }),
    )
    const [v4, v6] = servers as [(typeof servers)[0], (typeof servers)[0]]
    const w = await runWitness({
      targets: [
        { proto: 'tcp', host: v4.host, port: v4.tcpPort, flows: 1, path: 'dnat' },
        { proto: 'tcp', host: v6.host, port: v6.tcpPort, flows: 1, path: 'dnat' },
        { proto: 'udp', host: v6.host, port: v6.udpPort, flows: 1, path: 'forward' },
      ],
      intervalMs: 10,
      durationMs: 400,
      bind: '127.0.0.1',
      bind6: '::1',
    })
    for (const s of servers) {
      s.tcp.close()
      s.udp.close()
    }
    expect(w.flows.map((f) => [f.proto, f.family, f.target])).toEqual([
      ['tcp', 4, `127.0.0.1:${v4.tcpPort}`],
      ['tcp', 6, `[::1]:${v6.tcpPort}`],
      ['udp', 6, `[::1]:${v6.udpPort}`],
    ])
    for (const f of w.flows) expect(f).toMatchObject({ reset: false, connected: true, lost: 0 })
    for (const f of w.flows) expect(f.received).toBeGreaterThan(10)
    expect(new Set(v4.peers)).toEqual(new Set(['127.0.0.1']))
    expect(new Set(v6.peers)).toEqual(new Set(['::1']))
  })
})
