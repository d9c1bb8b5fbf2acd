import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { exec } from '@hafw/core'
import { loadInventory, type Model, type PairModel } from '@hafw/inventory'
import { renderInventory } from '@hafw/render'
import {
  type CtSample, type Flow, type NodeInput, type NodeProbe, ADDR_COMMAND, SILENT_MS, compareFlows, compileSyncFilter, conntrackListCommand, dumpCommand, formatVerify, judgePair,
  parseAddrLine, parseAddrs, parseConntrackdStats, parseProbe, probeLoopScript, probeScript, syncFilter,
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
  const parts = ['@@t 1795309030000', '@@addr', o.addr.trimEnd(), '@@units', ka, ct, '@@state', o.state ?? '', '', '@@count 42']
  if (o.ct) {
    for (const [which, text] of [['general', o.ct.general], ['link', o.ct.link ?? ''], ['network', o.ct.network ?? '']] as const) parts.push(`@@ct ${which}`, text.trimEnd(), `@@rc ${o.ct.rc ?? 0}`)
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
    for (const want of ['\nip -o addr show\n', 'systemctl is-active', '/run/hafw/state.json', 'nf_conntrack_count', `conntrackd -C ${CONF} -s`]) expect(s).toContain(want)
    // one command, both families: no -4 (nor -6) in the probe
    expect(s).not.toMatch(/ip -o -[46]/)
    expect(probeScript({ conntrackdConf: CONF, brief: true })).toContain(`\n${ADDR_COMMAND}\n`)
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

  it('as a loop with conntrackd: "s" answers its counters alone', async () => {
    const o = { units: ['hafw-none-such.service'], brief: true, runDir: '/nonexistent-hafw', conntrackdConf: '/nonexistent-hafw/conntrackd.conf' }
    const r = await exec('sh', ['-c', probeLoopScript(o), 'hafw-loop'], { input: 's\np\ns\n', allowFail: true })
    const [stats, full, again] = r.stdout.split(/(?<=^@@end\n)/m)
    expect(stats).not.toContain('@@addr')
    // a full probe in between (it defines shell functions of its own) changes nothing
    expect(again).toMatch(/^@@ct general\n[\s\S]*^@@end\n$/m)
    expect(again).not.toContain('@@addr')
    expect(parseProbe(stats!, 0, { ...o, statsOnly: true }).conntrackd).toMatchObject({ running: false })
    expect(full).toContain('@@addr')
  })

  it('as a loop: "p" samples, an extra name runs its line, anything else ends it', async () => {
    const o = { units: ['hafw-none-such.service'], brief: true, runDir: '/nonexistent-hafw' }
    const s = probeLoopScript(o, { mark: 'echo ran > /dev/stderr' })
    const r = await exec('sh', ['-c', s, 'hafw-loop'], { input: 'p\nmark\np\nbogus\np\n', allowFail: true })
    expect(r.code).toBe(2)
    // two samples and one command answered, then "bogus" ended the loop before the third sample
    const answers = r.stdout.split(/(?<=^@@end\n)/m)
    expect(answers).toHaveLength(3)
    expect(answers[1]).toBe('@@end\n')
    for (const a of [answers[0]!, answers[2]!]) expect(parseProbe(a, 0, o).units).toEqual({ 'hafw-none-such.service': expect.any(String) })
    expect(r.stderr).not.toContain('ran') // its output is discarded, not mixed into answers
    expect(() => probeLoopScript(o, { p: 'true' })).toThrow(/bad command name/)
    expect(() => probeLoopScript(o, { s: 'true' })).toThrow(/bad command name/)
    expect(() => probeLoopScript(o, { 'a b': 'true' })).toThrow(/bad command name/)
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

/*
 * IPv6 VIPs, from the dual-stack pair make-samples-ipv6.sh runs (keepalived 2.2.7 with IPv4 and
 * native IPv6 instances in one sync group): `ip -o addr show` on the MASTER, the BACKUP, and the
 * BACKUP once VRRP was blocked on it (a real split brain). test/fixtures/conntrack/ipv6-pair.yaml
 * is that pair as an inventory.
 */
describe('IPv6 VIPs and the dual-stack pair', () => {
  let m6: Model
  let fw6: PairModel
  const v6ct = { general: read('ipv6-stats-standby.txt'), link: read('ipv6-stats-standby-link.txt'), network: read('stats-active-network.txt') }
  const at = (name: string, addr: string) => node(name, probe(output({ addr, ct: v6ct })))
  const ACTIVE = read('ipv6-addr-active.txt')
  const BACKUP = read('ipv6-addr-backup.txt')

  it('loads the sampled pair', async () => {
    m6 = await loadInventory(DIR + 'ipv6-pair.yaml')
    fw6 = m6.pairs[0]!
    expect(fw6.vrrp.instances.map((i) => [i.name, i.family])).toEqual([['VI_IN', 4], ['VI_OUT', 4], ['VI6_IN', 6], ['VI6_OUT', 6]])
  })

  it('reads both families from `ip -o addr show`, leaving out link-local addresses', () => {
    const a = parseAddrs(ACTIVE)
    expect(a.filter((x) => x.device === 'in0')).toEqual([
      { device: 'in0', ip: '192.168.10.11' },
      { device: 'in0', ip: '192.168.10.10' },
      { device: 'in0', ip: 'fd00:10::60' },
      { device: 'in0', ip: 'fd00:10::1' },
      { device: 'in0', ip: 'fd00:10::11' },
    ])
    expect(ACTIVE).toMatch(/inet6 fe80::\S+ scope link/)
    expect(a.some((x) => x.ip.startsWith('fe80'))).toBe(false)
    expect(a).toContainEqual({ device: 'lo', ip: '::1' })
    expect(a.filter((x) => x.device === 'sync0')).toEqual([{ device: 'sync0', ip: 'fd00:250::1' }])
    // the IPv4 lines alone are what `ip -o -4 addr show` prints: read as before
    const v4 = ACTIVE.split('\n').filter((l) => / inet /.test(l)).join('\n')
    expect(parseAddrs(v4)).toEqual(a.filter((x) => !x.ip.includes(':')))
  })

  it('one line at a time: tentative and dadfailed IPv6 addresses are marked, and still count as held', () => {
    const line = ACTIVE.split('\n').find((l) => l.includes('fd00:20::60/64'))!
    expect(parseAddrLine(line)).toEqual({ device: 'out0', ip: 'fd00:20::60' })
    const tentative = line.replace('nodad', 'tentative')
    expect(parseAddrLine(tentative)).toEqual({ device: 'out0', ip: 'fd00:20::60', tentative: true })
    expect(parseAddrLine(line.replace('nodad', 'dadfailed tentative'))).toMatchObject({ tentative: true })
    // a word after the "\\" (the lifetimes) is no flag
    expect(parseAddrLine(line + ' tentative')).toEqual({ device: 'out0', ip: 'fd00:20::60' })
    expect(parseAddrs(tentative)).toEqual([{ device: 'out0', ip: 'fd00:20::60' }])
    expect(parseAddrLine(ACTIVE.split('\n').find((l) => l.includes('fe80::'))!)).toBeNull()
    expect(parseAddrLine('3: out0    inet 192.168.20.10/24 scope global secondary out0\\       valid_lft forever')).toEqual({ device: 'out0', ip: '192.168.20.10' })
  })

  it('keeps IPv6 addresses in the canonical text the model holds', () => {
    // what ip (inet_ntop) prints for a VIP ::102:304 (six leading zero groups: a dotted quad)
    const line = ACTIVE.split('\n').find((l) => l.includes('fd00:10::60/64'))!
    expect(parseAddrs(line.replace('fd00:10::60/64', '::1.2.3.4/64'))).toEqual([{ device: 'in0', ip: '::102:304' }])
    expect(parseAddrs(line)).toEqual([{ device: 'in0', ip: fw6.vrrp.instances[2]!.vips[1]!.ip }])
  })

  it('a healthy dual-stack pair: the node holding the IPv4 and IPv6 VIPs is active', () => {
    const h = judgePair(fw6, [at('fw6a', ACTIVE), at('fw6b', BACKUP)])
    expect(h.problems).toEqual([])
    expect(h).toMatchObject({ active: 'fw6a', standby: 'fw6b' })
    expect(h.instances.find((i) => i.instance === 'VI6_OUT')).toEqual({
      instance: 'VI6_OUT',
      vips: [{ vip: 'fd00:20::1', holders: ['fw6a'] }, { vip: 'fd00:20::60', holders: ['fw6a'] }],
      roles: { fw6a: 'MASTER', fw6b: 'BACKUP' },
      master: 'fw6a',
    })
    // sync over IPv6: the same counters (conntrackd -s on fw6b)
    expect(h.sync!.fw6b).toMatchObject({ running: true, link: 'RUNNING', external: 8 })
  })

  it('an IPv4-only view of the same node (`ip -o -4 addr`) would see no MASTER for the IPv6 instances', () => {
    const v4 = (t: string) => t.split('\n').filter((l) => / inet /.test(l)).join('\n') + '\n'
    const h = judgePair(fw6, [at('fw6a', v4(ACTIVE)), at('fw6b', v4(BACKUP))])
    expect(h.active).toBeNull()
    expect(h.problems.filter((p) => p.kind === 'no-master').map((p) => p.message)).toEqual([
      'VI6_IN: no MASTER: no node holds fd00:10::1, fd00:10::60',
      'VI6_OUT: no MASTER: no node holds fd00:20::1, fd00:20::60',
    ])
  })

  it('split brain on IPv6 VIPs (real: fw6b stopped hearing fw6a\'s adverts)', () => {
    const h = judgePair(fw6, [at('fw6a', ACTIVE), at('fw6b', read('ipv6-addr-splitbrain-backup.txt'))])
    expect(h.active).toBeNull()
    expect(h.problems.filter((p) => p.kind === 'split-brain').map((p) => p.instance)).toEqual(['VI_IN', 'VI_OUT', 'VI6_IN', 'VI6_OUT'])
    expect(h.problems.find((p) => p.instance === 'VI6_OUT')!.message).toBe('VI6_OUT: two MASTERs (split brain): fw6a holds fd00:20::1, fd00:20::60; fw6b holds fd00:20::1, fd00:20::60')
    // only the IPv6 VIPs on both: split brain for the IPv6 instances, a split sync group otherwise
    const onlyV6 = read('ipv6-addr-splitbrain-backup.txt').split('\n').filter((l) => !/192\.168\.\d+\.10\//.test(l)).join('\n')
    const h6 = judgePair(fw6, [at('fw6a', ACTIVE), at('fw6b', onlyV6)])
    expect(h6.problems.filter((p) => p.kind === 'split-brain').map((p) => p.instance)).toEqual(['VI6_IN', 'VI6_OUT'])
  })

  it('an IPv6 VIP missing on the MASTER, or on another device', () => {
    const lacking = judgePair(fw6, [at('fw6a', ACTIVE.replace(/^.*fd00:10::60\/64.*\n/m, '')), at('fw6b', BACKUP)])
    expect(lacking.problems).toEqual([expect.objectContaining({ kind: 'vip-missing', node: 'fw6a', instance: 'VI6_IN', message: 'VI6_IN: fw6a is MASTER but lacks fd00:10::60' })])
    const moved = judgePair(fw6, [at('fw6a', ACTIVE.replace('3: out0    inet6 fd00:20::60/64', '2: in0    inet6 fd00:20::60/64')), at('fw6b', BACKUP)])
    expect(moved.problems).toEqual([expect.objectContaining({ kind: 'vip-wrong-device', message: 'VI6_OUT: fw6a holds fd00:20::60 on in0, not on out0 (outside)' })])
  })

  it('the sync Filter is the rendered conntrackd.conf\'s, both families, plus the SSH addresses', () => {
    const rendered = renderInventory(m6, { pair: 'fw6', node: 'fw6a' })[0]!.files.find((x) => x.path.endsWith('/conntrackd.conf'))!.content
    // what render promises: the node's IPv6 addresses as IPv6_address lines
    expect(rendered).toMatch(/^\s*IPv6_address fd00:20::11$/m)
    const inFile = [...rendered.slice(rendered.indexOf('Address Ignore')).matchAll(/^\s*IPv[46]_address (\S+)$/gm)].map((x) => x[1]!)
    const f = syncFilter(m6, fw6, fw6.nodes[0])
    // SSH goes to fd00:10::11 / fd00:10::12: hafw's own connections, left out over IPv6 too
    expect(f.ignoreAddresses).toEqual([...new Set([...inFile, 'fd00:10::11', 'fd00:10::12'])])
    const keep = compileSyncFilter(f)
    const from = (src: string): Flow => ({ proto: 'tcp', protonum: 6, orig: { src, dst: 'fd00:20::7', sport: 1, dport: 2 } })
    expect(keep(from('fd00:10::12'))).toBe(false)
    expect(keep(from('fd00:10::100'))).toBe(true)
    // every own address of fw6a, either family, is left out exactly when the file lists it:
    // verify mirrors what the deployed conntrackd syncs, not the model
    const own = Object.values(fw6.nodes[0].interfaces).flatMap((i) => [i.address?.ip, i.address6?.ip]).filter((a): a is string => !!a)
    expect(own).toContain('fd00:20::11')
    const listed = new Set([...inFile, 'fd00:10::11'])
    for (const a of own) expect(keep(from(a)), a).toBe(!listed.has(a))
  })

  it('the kernel dump command asks for each family once, in one channel', () => {
    expect(dumpCommand('kernel', CONF)).toBe('conntrack -L -f ipv4 -o ktimestamp && conntrack -L -f ipv6 -o ktimestamp')
    expect(conntrackListCommand('-p tcp')).toBe('conntrack -L -f ipv4 -p tcp && conntrack -L -f ipv6 -p tcp')
    expect(dumpCommand('external', CONF)).toBe(`conntrackd -C ${CONF} -e`)
  })

  it('prints IPv6 flows with bracketed addresses', () => {
    const f: Flow = { proto: 'tcp', protonum: 6, orig: { src: 'fd00:10::100', dst: 'fd00:10::60', sport: 41002, dport: 8080 }, state: 'ESTABLISHED' }
    const text = formatVerify({
      ok: false, site: 'v6samples', ms: 1000,
      pairs: [{
        pair: 'fw6', kind: 'firewall', ok: false, converged: false, active: 'fw6a', standby: 'fw6b', source: 'kernel',
        counts: { activeKernel: 1, activeInternal: 1, standbyExternal: 0, compared: { active: 1, standby: 0 }, ignored: { active: 0, standby: 0 }, matched: 0, missing: 1, extra: 0, mismatched: 0, movedOn: 0, young: 0, pending: 0 },
        missing: [f], extra: [], mismatched: [], problems: [], roles: {}, vips: [], sync: null, polls: 1, ms: 1000, dumps: [], peakHeld: 1,
      }],
    })
    expect(text).toContain('missing on fw6b: tcp [fd00:10::100]:41002 -> [fd00:10::60]:8080 ESTABLISHED')
  })
})
