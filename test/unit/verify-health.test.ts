import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { exec } from '@hafw/core'
import { loadInventory, type Model, type PairModel } from '@hafw/inventory'
import {
  type CtSample, type Flow, type NodeInput, type NodeProbe, SILENT_MS, compareFlows, compileSyncFilter, judgePair, parseConntrackdStats,
  parseProbe, probeScript, syncFilter,
} from '@hafw/verify'

/*
 * The pure half of verify/status: the probe script and its parser (on real conntrackd 1.4.7
 * output, test/fixtures/conntrack/), the health verdicts, and the sync Filter as verify derives
 * it from the model. The SSH half runs against real nodes in test/lab/verify.test.ts.
 */

const DIR = 'test/fixtures/conntrack/'
const read = (f: string) => readFileSync(DIR + f, 'utf8')
const CONF = '/etc/conntrackd/conntrackd.conf'
// `ip -o -4 addr show` on the lab's fw1a while it is MASTER (secondary addresses are the VIPs)
const ADDR_MASTER = `1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever
2: mgmt0    inet 198.18.1.10/24 scope global mgmt0\\       valid_lft forever preferred_lft forever
3: ens4    inet 192.168.11.11/24 scope global ens4\\       valid_lft forever preferred_lft forever
3: ens4    inet 192.168.11.10/24 brd 192.168.11.255 scope global secondary ens4\\       valid_lft forever preferred_lft forever
4: ens3    inet 192.168.10.11/24 scope global ens3\\       valid_lft forever preferred_lft forever
4: ens3    inet 192.168.10.10/24 brd 192.168.10.255 scope global secondary ens3\\       valid_lft forever preferred_lft forever
4: ens3    inet 192.168.10.60/24 brd 192.168.10.255 scope global secondary ens3\\       valid_lft forever preferred_lft forever
5: ens5    inet 192.168.13.11/24 scope global ens5\\       valid_lft forever preferred_lft forever
`
const ADDR_BACKUP = `1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever
3: ens4    inet 192.168.11.12/24 scope global ens4\\       valid_lft forever preferred_lft forever
4: ens3    inet 192.168.10.12/24 scope global ens3\\       valid_lft forever preferred_lft forever
5: ens5    inet 192.168.13.12/24 scope global ens5\\       valid_lft forever preferred_lft forever
`
const STATE = '{"version":1,"node":"fw1a","pair":"edge1","role":"primary","phase":"done","since_ms":1795309021791,"updated_ms":1795309021858,"ok":true,"commit":null,"steps":[{"step":"commit","exit":0,"start_ms":1795309021810,"ms":4}]}'

/** What probeScript prints, assembled from real command outputs. */
function output(o: { addr: string; units?: [string, string]; state?: string; ct?: { general: string; rc?: number; link?: string; network?: string } }): string {
  const [ka, ct] = o.units ?? ['active', 'active']
  const parts = ['@@t 1795309030000', '@@addr', o.addr.trimEnd(), '@@units', `keepalived.service ${ka}`, `conntrackd.service ${ct}`, '@@state', o.state ?? '', '', '@@count 42']
  if (o.ct) {
    parts.push(`@@ct general ${o.ct.rc ?? 0}`, o.ct.general.trimEnd())
    parts.push(`@@ct link ${o.ct.rc ?? 0}`, (o.ct.link ?? '').trimEnd())
    parts.push(`@@ct network ${o.ct.rc ?? 0}`, (o.ct.network ?? '').trimEnd())
  }
  parts.push('@@end')
  return parts.join('\n') + '\n'
}

let model: Model
let edge: PairModel
let lb: PairModel
const probe = (text: string, t = 1000): NodeProbe => parseProbe(text, t, { conntrackdConf: CONF })
const healthyCt = { general: read('stats-active.txt'), link: read('stats-active-link.txt'), network: read('stats-active-network.txt') }
const node = (name: string, p: NodeProbe, first?: CtSample, last?: CtSample): NodeInput => ({ name, probe: p, ...(first ? { first } : {}), ...(last ? { last } : {}) })
const sample = (t: number, text: string): CtSample => ({ t, stats: parseConntrackdStats(text) })
/** -s, -s link and -s network as one probe reads them, with the receive and loss counters set */
const stats = (recv: number, lost = 0) =>
  [read('stats-active.txt').replace(/0 Lost msgs/, `${lost} Lost msgs`), read('stats-active-link.txt'), read('stats-active-network.txt').replace(/Packets lost:(\s+)0/, `Packets lost:$1${lost}`)]
    .join('\n')
    .replace(/(\s+)2 Pckts recv/g, `$1${recv} Pckts recv`)

describe('probe script and parser', () => {
  it('is valid sh and asks for everything verify judges', async () => {
    const s = probeScript({ conntrackdConf: CONF })
    expect((await exec('sh', ['-n'], { input: s, allowFail: true })).code).toBe(0)
    for (const want of ['ip -o -4 addr show', 'systemctl is-active', '/run/hafw/state.json', 'nf_conntrack_count', `conntrackd -C ${CONF} -s`]) expect(s).toContain(want)
    expect(probeScript({ conntrackdConf: CONF, statsOnly: true })).not.toContain('ip -o')
    expect(probeScript({})).not.toContain('conntrackd -C')
  })

  it('reads addresses, units, the state script and one stats object from -s, -s link, -s network', () => {
    const p = probe(output({ addr: ADDR_MASTER, state: STATE, ct: healthyCt }))
    expect(p.addrs).toContainEqual({ device: 'ens3', ip: '192.168.10.60' })
    expect(p.units).toEqual({ 'keepalived.service': 'active', 'conntrackd.service': 'active' })
    expect(p.state).toMatchObject({ role: 'primary', phase: 'done', ok: true })
    expect(p.kernelEntries).toBe(42)
    expect(p.nodeT).toBe(1795309030000)
    const s = p.conntrackd!.stats!
    expect(p.conntrackd!.running).toBe(true)
    expect(s.internal!.active).toBe(17)
    expect(s.links).toEqual([expect.objectContaining({ device: 'sync0', status: 'RUNNING', packetsRecv: 2 })])
    expect(s.messages).toEqual({ malformed: 0, lost: 0 })
    expect(s.network).toMatchObject({ recvMalformed: 0, packetsLost: 0 })
  })

  it('a conntrackd that does not answer, and output cut short', () => {
    const text = read('stats-not-running.txt').split('\nexit=')[0]!
    const p = probe(output({ addr: ADDR_BACKUP, units: ['active', 'inactive'], ct: { general: text, rc: 1 } }))
    expect(p.conntrackd).toEqual({ running: false, error: "[ERROR] can't connect: is conntrackd running? appropriate permissions?" })
    expect(() => probe('@@t 1\n@@addr\n')).toThrow(/cut short/)
  })
})

describe('judgePair', () => {
  it('loads the lab inventory', async () => {
    model = await loadInventory('inventory/lab.yaml')
    edge = model.pairs.find((p) => p.name === 'edge1')!
    lb = model.pairs.find((p) => p.name === 'lb1')!
  })

  const master = (o: { first?: CtSample; last?: CtSample } = {}) => node('fw1a', probe(output({ addr: ADDR_MASTER, state: STATE, ct: healthyCt })), o.first, o.last)
  const backup = (o: { first?: CtSample; last?: CtSample; ct?: typeof healthyCt; units?: [string, string]; addr?: string } = {}) =>
    node('fw1b', probe(output({ addr: o.addr ?? ADDR_BACKUP, ct: o.ct ?? healthyCt, ...(o.units ? { units: o.units } : {}) })), o.first, o.last)
  const alive = { first: sample(0, stats(10)), last: sample(900, stats(11)) }

  it('a healthy pair: the VIP holder is active, every instance has one MASTER', () => {
    const h = judgePair(edge, [master(alive), backup(alive)])
    expect(h.problems).toEqual([])
    expect(h).toMatchObject({ active: 'fw1a', standby: 'fw1b' })
    expect(h.instances.map((i) => [i.instance, i.master, i.roles])).toEqual([
      ['VI_OUT', 'fw1a', { fw1a: 'MASTER', fw1b: 'BACKUP' }],
      ['VI_IN', 'fw1a', { fw1a: 'MASTER', fw1b: 'BACKUP' }],
    ])
    expect(h.sync!.fw1b).toMatchObject({ running: true, link: 'RUNNING', liveness: 'alive', rxPackets: 1, internal: 17 })
  })

  it('split brain: the VIPs on both nodes', () => {
    const h = judgePair(edge, [master(), backup({ addr: ADDR_MASTER.replace(/192\.168\.1(\d)\.11\//g, '192.168.1$1.12/') })])
    expect(h.active).toBeNull()
    expect(h.problems.filter((p) => p.kind === 'split-brain').map((p) => p.instance)).toEqual(['VI_OUT', 'VI_IN'])
    expect(h.instances[0]!.roles).toEqual({ fw1a: 'MASTER', fw1b: 'MASTER' })
  })

  it('no MASTER, and roles from the units and the state script', () => {
    const stopped = node('fw1a', probe(output({ addr: ADDR_BACKUP, units: ['inactive', 'active'], ct: healthyCt })))
    const fault = node('fw1b', probe(output({ addr: ADDR_BACKUP, state: STATE.replace('"primary"', '"fault"'), ct: healthyCt })))
    const h = judgePair(edge, [stopped, fault])
    expect(h.problems.filter((p) => p.kind === 'no-master')).toHaveLength(2)
    expect(h.problems.find((p) => p.kind === 'keepalived-down')).toMatchObject({ node: 'fw1a' })
    expect(h.instances[0]!.roles).toEqual({ fw1a: 'STOPPED', fw1b: 'FAULT' })
  })

  it('VIPs of one sync group on two nodes, a partial MASTER, a VIP on the wrong device', () => {
    const outOnly = ADDR_MASTER.split('\n').filter((l) => !l.includes('192.168.11.10')).join('\n')
    const inOnly = ADDR_BACKUP + '3: ens4    inet 192.168.11.10/24 brd 192.168.11.255 scope global secondary ens4\n'
    const split = judgePair(edge, [node('fw1a', probe(output({ addr: outOnly, ct: healthyCt }))), backup({ addr: inOnly })])
    expect(split.active).toBeNull()
    expect(split.problems.map((p) => p.kind)).toEqual(['vip-wrong-node'])
    expect(split.problems[0]!.message).toBe('sync group G1 is split: VI_OUT on fw1a, VI_IN on fw1b')

    const partial = judgePair(edge, [node('fw1a', probe(output({ addr: ADDR_MASTER.replace(/^.*192\.168\.10\.60.*\n/m, ''), ct: healthyCt }))), backup()])
    expect(partial.problems).toContainEqual(expect.objectContaining({ kind: 'vip-missing', node: 'fw1a', instance: 'VI_OUT', message: 'VI_OUT: fw1a is MASTER but lacks 192.168.10.60' }))

    const dev = judgePair(edge, [node('fw1a', probe(output({ addr: ADDR_MASTER.replace('4: ens3    inet 192.168.10.60', '3: ens4    inet 192.168.10.60'), ct: healthyCt }))), backup()])
    expect(dev.problems).toContainEqual(expect.objectContaining({ kind: 'vip-wrong-device', message: 'VI_OUT: fw1a holds 192.168.10.60 on ens4, not on ens3 (outside)' }))
  })

  it('with preemption, the healthy higher-priority node must hold the VIPs', () => {
    const onB = ADDR_MASTER.replace(/192\.168\.1(\d)\.11\//g, '192.168.1$1.12/')
    const h = judgePair(edge, [node('fw1a', probe(output({ addr: ADDR_BACKUP.replace(/\.12\//g, '.11/'), ct: healthyCt }))), backup({ addr: onB })])
    expect(h.active).toBe('fw1b')
    expect(h.problems.map((p) => p.message)).toEqual(['the VIPs are on fw1b, but fw1a (priority 150, preempting) runs keepalived and should hold them'])
    // nopreempt with equal priorities (lb1): whoever holds them is right
    expect(lb.vrrp.nopreempt).toBe(true)
  })

  it('sync: conntrackd down, a DOWN link, silence, lost and malformed messages rising', () => {
    const down = judgePair(edge, [master(alive), backup({ units: ['active', 'inactive'], ct: { general: read('stats-not-running.txt').split('\nexit=')[0]!, rc: 1 } })])
    expect(down.problems).toEqual([expect.objectContaining({ kind: 'conntrackd-down', node: 'fw1b', message: expect.stringMatching(/^fw1b: conntrackd is not running \(conntrackd.service inactive; \[ERROR\] can't connect/) })])

    const linkDown = judgePair(edge, [master(alive), backup({ ct: { ...healthyCt, link: read('stats-link-down.txt') } })])
    expect(linkDown.problems).toContainEqual(expect.objectContaining({ kind: 'sync-link-down', node: 'fw1b', message: 'fw1b: sync link sync0 is DOWN' }))

    const quiet = { first: sample(0, stats(10)), last: sample(SILENT_MS, stats(10)) }
    const silent = judgePair(edge, [master(alive), backup(quiet)])
    expect(silent.sync!.fw1b!.liveness).toBe('silent')
    expect(silent.problems.map((p) => p.kind)).toEqual(['sync-link-silent'])
    // shorter than the window: not known yet, not a problem
    expect(judgePair(edge, [master(alive), backup({ first: quiet.first, last: sample(SILENT_MS - 1, stats(10)) })]).sync!.fw1b!.liveness).toBe('unknown')

    const lost = judgePair(edge, [master(alive), backup({ first: sample(0, stats(10, 0)), last: sample(900, stats(20, 9)) })])
    expect(lost.problems).toEqual([expect.objectContaining({ kind: 'lost-messages', node: 'fw1b', message: 'fw1b: 9 sync messages lost during the check (counter 0 -> 9)' })])
    const malformed = judgePair(edge, [master(alive), backup({ first: sample(0, stats(10)), last: sample(900, stats(11).replace('0 Malformed msgs', '3 Malformed msgs')) })])
    expect(malformed.problems.map((p) => p.kind)).toEqual(['malformed-messages'])
  })

  it('an unreachable node', () => {
    const h = judgePair(edge, [master(alive), { name: 'fw1b', error: 'fw1b (root@192.168.10.12:22): connection refused' }])
    expect(h.problems).toEqual([{ kind: 'unreachable', node: 'fw1b', message: 'fw1b: fw1b (root@192.168.10.12:22): connection refused' }])
    expect(h.instances[0]!.roles.fw1b).toBe('UNKNOWN')
  })
})

describe('the sync Filter verify derives from the model', () => {
  it('is the rendered conntrackd.conf Filter plus the nodes\' SSH addresses', async () => {
    const m = await loadInventory('inventory/lab.yaml')
    const p = m.pairs[0]!
    const f = syncFilter(m, p, p.nodes[0])
    expect(f.acceptProtocols).toEqual(['TCP', 'UDP', 'ICMP'])
    expect(f.ignoreAddresses).toEqual(['127.0.0.1', '192.168.10.11', '192.168.11.11', '192.168.13.11', '192.168.10.12'])
    const keep = compileSyncFilter(f)
    const flow = (src: string, dst: string, reply?: string): Flow => ({ proto: 'tcp', protonum: 6, orig: { src, dst, sport: 1, dport: 2 }, ...(reply ? { reply: { src: reply, dst: src, sport: 2, dport: 1 } } : {}) })
    expect(keep(flow('192.168.10.100', '192.168.10.60', '192.168.11.60'))).toBe(true)
    expect(keep(flow('192.168.10.100', '192.168.10.11'))).toBe(false)
    expect(keep(flow('192.168.10.12', '192.168.20.1'))).toBe(false)
    // prefixes still match numerically, single addresses by their text
    const pre = compileSyncFilter({ ignoreAddresses: ['10.0.0.0/8', '192.168.001.001'] })
    expect(pre(flow('10.1.2.3', '1.1.1.1'))).toBe(false)
    expect(pre(flow('192.168.1.1', '1.1.1.1'))).toBe(false)
    expect(pre(flow('192.168.1.2', '1.1.1.1'))).toBe(true)
  })
})

describe('compareFlows: an old entry only on the standby', () => {
  it('is judged by persistence, since a destroy may be in flight', async () => {
    const f: Flow = { proto: 'udp', protonum: 17, orig: { src: '10.0.0.1', dst: '10.0.0.2', sport: 1, dport: 2 }, age: 600 }
    const t0 = 1_000_000
    const p1 = await compareFlows([], [f], { graceSeconds: 5, now: t0 })
    expect(p1.counts).toMatchObject({ extra: 0, pending: 1 })
    const p2 = await compareFlows([], [f], { graceSeconds: 5, now: t0 + 5000, previous: p1.memo })
    expect(p2.counts).toMatchObject({ extra: 1, pending: 0 })
    // a young one is skipped at once
    expect((await compareFlows([], [{ ...f, age: 1 }], { graceSeconds: 5 })).counts).toMatchObject({ young: 1, pending: 0, extra: 0 })
  })
})
