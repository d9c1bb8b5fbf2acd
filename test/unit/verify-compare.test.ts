import { readFileSync } from 'node:fs'
import { Readable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { type CompareOptions, type Flow, compareFlows, compileSyncFilter, flowKey, parseFlows, parseFlowsSync } from '@hafw/verify'

const DIR = 'test/fixtures/conntrack/'
const sample = (f: string) => parseFlowsSync(readFileSync(DIR + f, 'utf8'), { source: f })
// The Filter the samples' conntrackd ran with (make-samples.sh)
const FILTER = { ignoreAddresses: ['127.0.0.1', '192.168.250.1', '10.9.0.0/16'], acceptProtocols: ['TCP', 'UDP', 'ICMP', 'IPv6-ICMP'] }

/** A TCP flow 10.0.<n>/<port> -> 10.1.0.1:443; reply reversed unless given. */
function tcp(n: number, extra: Partial<Flow> = {}): Flow {
  const orig = { src: `10.0.${n >> 8}.${n & 255}`, dst: '10.1.0.1', sport: 30000 + n, dport: 443 }
  return {
    proto: 'tcp', protonum: 6, orig,
    reply: { src: orig.dst, dst: orig.src, sport: orig.dport, dport: orig.sport },
    state: 'ESTABLISHED', mark: 0,
    ...extra,
  }
}
const noReply = (f: Flow): Flow => {
  const { reply: _r, ...rest } = f
  return rest
}
const range = (n: number) => Array.from({ length: n }, (_, i) => i)
const cmp = (a: Flow[], s: Flow[], o: CompareOptions = {}) => compareFlows(a, s, { graceSeconds: 0, ...o })

describe('compareFlows on the real samples', () => {
  it('finds the one entry the standby never got (created before conntrackd started)', async () => {
    const r = await cmp(sample('internal.txt'), sample('external.xml'))
    expect(r.converged).toBe(false)
    expect(r.counts).toMatchObject({ active: 17, standby: 16, matched: 16, missing: 1, extra: 0, mismatched: 0 })
    expect(r.missing).toEqual([
      {
        proto: 'tcp', protonum: 6, state: 'ESTABLISHED', mark: 3,
        orig: { src: '192.168.10.4', dst: '192.168.20.4', sport: 39999, dport: 443 },
        reply: { src: '192.168.20.4', dst: '192.168.10.4', sport: 443, dport: 39999 },
      },
    ])
  })

  it('treats it as young with a grace window longer than its cached age ("[active since 2s]")', async () => {
    const r = await compareFlows(sample('internal.txt'), sample('external.xml'), { graceSeconds: 5 })
    expect(r.converged).toBe(true)
    expect(r.counts).toMatchObject({ missing: 0, young: 1, pending: 0 })
  })

  it('excludes what the active node\'s Filter ignores from the kernel table, in both formats', async () => {
    for (const [k, e] of [['kernel.txt', 'external.txt'], ['kernel.xml', 'external.xml'], ['kernel.txt', 'external.xml']]) {
      const r = await cmp(sample(k!), sample(e!), { activeFilter: FILTER })
      expect(r.counts, `${k} vs ${e}`).toMatchObject({ ignored: { active: 4, standby: 0 }, matched: 16, missing: 1, extra: 0, mismatched: 0 })
      expect(r.missing.map((f) => f.orig.src)).toEqual(['192.168.10.4'])
      const unfiltered = await cmp(sample(k!), sample(e!))
      expect(unfiltered.counts.missing).toBe(5) // 10.9.1.1, own sync address, SCTP, GRE, and the real one
    }
  })

  it('matches ICMP flows with and without type/code/id, counting repeated keys', async () => {
    const icmp = (f: Flow) => f.proto === 'icmp'
    const r = await cmp(sample('kernel.txt').filter(icmp), sample('external.xml').filter(icmp))
    expect(r.counts).toMatchObject({ active: 2, standby: 2, matched: 2, missing: 0, extra: 0 })
  })

  it('compares NAT reply tuples where both sides have them (kernel vs internal cache)', async () => {
    const r = await cmp(sample('kernel.xml'), sample('internal.txt'), { activeFilter: FILTER })
    expect(r.counts).toMatchObject({ matched: 17, missing: 0, extra: 0, mismatched: 0 })
    const internal = sample('internal.txt').map((f) => (f.orig.sport === 40002 ? { ...f, reply: { ...f.reply!, src: '192.168.1.61' } } : f))
    const bad = await cmp(sample('kernel.xml'), internal, { activeFilter: FILTER })
    expect(bad.mismatched).toHaveLength(1)
    expect(bad.mismatched[0]).toMatchObject({ fields: ['reply'], active: { reply: { src: '192.168.1.60' } }, standby: { reply: { src: '192.168.1.61' } } })
  })

  it('streams both dumps concurrently from Node streams', async () => {
    const stream = (f: string) => parseFlows(Readable.from([readFileSync(DIR + f)]))
    const r = await compareFlows(stream('kernel.txt'), stream('external.xml'), { graceSeconds: 0, activeFilter: FILTER })
    expect(r.counts).toMatchObject({ matched: 16, missing: 1 })
    // a plain AsyncIterable (no batches()): the flow-by-flow path
    const plain: AsyncIterable<Flow> = { [Symbol.asyncIterator]: () => stream('kernel.xml')[Symbol.asyncIterator]() }
    const flowByFlow = await compareFlows(plain, sample('external.txt'), { graceSeconds: 0, activeFilter: FILTER })
    expect(flowByFlow.counts).toMatchObject({ matched: 16, missing: 1 })
  })
})

describe('compareFlows rules', () => {
  it('reports missing, extra and mismatched marks with capped samples', async () => {
    const active = range(50).map((i) => tcp(i, { mark: i === 7 ? 0xffffffff : 1 }))
    const standby = [...range(40).map((i) => noReply(tcp(i, { mark: 1 }))), ...range(3).map((i) => tcp(1000 + i))]
    const r = await cmp(active, standby, { samples: 4 })
    expect(r.counts).toMatchObject({ active: 50, standby: 43, matched: 40, missing: 10, extra: 3, mismatched: 1 })
    expect(r.missing).toHaveLength(4)
    expect(r.extra.map((f) => f.orig.sport).sort()).toEqual([31000, 31001, 31002])
    expect(r.mismatched[0]).toMatchObject({ key: flowKey(tcp(7)), fields: ['mark'], active: { mark: 0xffffffff }, standby: { mark: 1 } })
  })

  it('does not compare a mark or reply tuple one side does not print', async () => {
    const { mark: _m, ...unmarked } = tcp(1, { mark: undefined })
    const r = await cmp([tcp(1, { mark: 9 }), tcp(2)], [unmarked as Flow, noReply(tcp(2))])
    expect(r.counts).toMatchObject({ matched: 2, mismatched: 0 })
  })

  it('keys on the zone', async () => {
    const r = await cmp([tcp(1, { zone: 3 })], [tcp(1)])
    expect(r.counts).toMatchObject({ matched: 0, missing: 1, extra: 1 })
    expect(r.missing[0]!.zone).toBe(3)
  })

  it('counts repeated keys on one side', async () => {
    const ping = (id: number): Flow => ({ proto: 'icmp', protonum: 1, orig: { src: '10.0.0.1', dst: '10.0.0.2', type: 8, code: 0, id }, mark: 0 })
    const r = await cmp([ping(1), ping(2), ping(3)], [ping(1), ping(2)])
    expect(r.counts).toMatchObject({ matched: 2, missing: 1 })
    const big = await cmp([tcp(1, { mark: 0xfffffff0 }), tcp(1, { mark: 0xfffffff0 })], [tcp(1, { mark: 0xfffffff0 })])
    expect(big.counts).toMatchObject({ matched: 1, missing: 1, mismatched: 0 })
    expect(big.missing[0]!.mark).toBe(0xfffffff0)
  })

  it('rebuilds IPv6 and non-port samples from the stored key', async () => {
    const v6: Flow = { proto: 'tcp', protonum: 6, orig: { src: 'fd00::1', dst: 'fd00::2', sport: 1, dport: 2 }, state: 'SYN_SENT' }
    const gre: Flow = { proto: 'gre', protonum: 47, orig: { src: '10.0.0.1', dst: '10.0.0.2', sport: 16, dport: 32 }, zone: 9 }
    const r = await cmp([v6, gre], [])
    expect(r.missing).toEqual([v6, gre])
  })

  describe('states that moved on', () => {
    const later = (state: string) => noReply(tcp(1, { state }))

    it('are not a mismatch on the first sighting, whichever side is ahead', async () => {
      for (const [a, s] of [['ESTABLISHED', 'FIN_WAIT'], ['ESTABLISHED', 'TIME_WAIT'], ['FIN_WAIT', 'CLOSE'], ['SYN_SENT', 'ESTABLISHED'], ['TIME_WAIT', 'ESTABLISHED']]) {
        const r = await compareFlows([tcp(1, { state: a, age: 3600 })], [later(s!)], { graceSeconds: 5 })
        expect(r.counts, `${a} -> ${s}`).toMatchObject({ movedOn: 1, mismatched: 0, pending: 1 })
        expect(r.converged).toBe(true)
      }
    })

    it('are a mismatch once they persist for the grace window', async () => {
      const t0 = 1_000_000
      const first = await compareFlows([tcp(1, { state: 'TIME_WAIT' })], [later('ESTABLISHED')], { graceSeconds: 5, now: t0 })
      const early = await compareFlows([tcp(1, { state: 'TIME_WAIT' })], [later('ESTABLISHED')], { graceSeconds: 5, now: t0 + 2000, previous: first.memo })
      expect(early.counts).toMatchObject({ pending: 1, mismatched: 0 })
      const late = await compareFlows([tcp(1, { state: 'TIME_WAIT' })], [later('ESTABLISHED')], { graceSeconds: 5, now: t0 + 6000, previous: early.memo })
      expect(late.counts).toMatchObject({ mismatched: 1, pending: 0 })
      expect(late.mismatched[0]).toMatchObject({ fields: ['state'], active: { state: 'TIME_WAIT' }, standby: { state: 'ESTABLISHED' } })
      const settled = await compareFlows([tcp(1, { state: 'TIME_WAIT' })], [later('TIME_WAIT')], { graceSeconds: 5, now: t0 + 7000, previous: late.memo })
      expect(settled.converged).toBe(true)
      expect(settled.memo.size).toBe(0)
    })

    it('a standby ahead of the active is a mismatch when the standby was dumped first', async () => {
      const r = await cmp([tcp(1, { state: 'ESTABLISHED' })], [later('TIME_WAIT')], { standbyFirst: true })
      expect(r.counts).toMatchObject({ mismatched: 1, movedOn: 0 })
      const behind = await compareFlows([tcp(1, { state: 'TIME_WAIT' })], [later('ESTABLISHED')], { standbyFirst: true, graceSeconds: 5 })
      expect(behind.counts).toMatchObject({ mismatched: 0, movedOn: 1 })
    })

    it('states outside the TCP life cycle are a plain mismatch', async () => {
      const sctp = (state: string): Flow => ({ proto: 'sctp', protonum: 132, orig: { src: '10.0.0.1', dst: '10.0.0.2', sport: 1, dport: 2 }, state, age: 60 })
      const r = await compareFlows([sctp('ESTABLISHED')], [sctp('COOKIE_WAIT')], { graceSeconds: 5 })
      expect(r.counts).toMatchObject({ mismatched: 1, movedOn: 0 })
      expect(r.mismatched[0]!.standby.state).toBe('COOKIE_WAIT')
    })
  })

  describe('grace window', () => {
    it('skips divergence on entries younger than the window, reports older ones at once', async () => {
      const r = await compareFlows([tcp(1, { age: 2 }), tcp(2, { age: 10 }), tcp(3, { age: 1, mark: 5 })], [tcp(3, { mark: 4 }), noReply(tcp(4, { age: 1 }))], {
        graceSeconds: 5,
      })
      expect(r.counts).toMatchObject({ young: 3, missing: 1, extra: 0, mismatched: 0 })
      expect(r.missing[0]!.orig.sport).toBe(30002)
    })

    it('without an age, needs the difference to persist across polls', async () => {
      const t0 = 5_000_000
      const active = [tcp(1), tcp(2)]
      const p1 = await compareFlows(active, [], { graceSeconds: 5, now: t0 })
      expect(p1.counts).toMatchObject({ missing: 0, pending: 2 })
      expect(p1.converged).toBe(true)
      // second poll 6 s later: tcp(2) arrived meanwhile, tcp(1) still missing
      const p2 = await compareFlows(active, [noReply(tcp(2))], { graceSeconds: 5, now: t0 + 6000, previous: p1.memo })
      expect(p2.counts).toMatchObject({ missing: 1, pending: 0, matched: 1 })
      expect(p2.missing[0]!.orig.sport).toBe(30001)
      expect(p2.converged).toBe(false)
      // a new difference in the second poll starts its own clock
      const p3 = await compareFlows([...active, tcp(3)], [noReply(tcp(2))], { graceSeconds: 5, now: t0 + 7000, previous: p2.memo })
      expect(p3.counts).toMatchObject({ missing: 1, pending: 1 })
    })

    it('graceSeconds 0 reports everything at once', async () => {
      const r = await cmp([tcp(1, { age: 0 })], [])
      expect(r.counts).toMatchObject({ missing: 1, young: 0, pending: 0 })
    })
  })

  it('holds only entries not yet seen on the other side', async () => {
    const flows = range(2000).map((i) => tcp(i))
    const same = await cmp(flows, flows.map(noReply))
    expect(same.counts.matched).toBe(2000)
    expect(same.peakHeld).toBeLessThanOrEqual(2)
    // dumps of two nodes come in unrelated hash orders: about half of one side at the peak
    let seed = 42
    const shuffled = flows.map((f) => ({ f, r: (seed = (seed * 1103515245 + 12345) % 2 ** 31) })).sort((a, b) => a.r - b.r).map((x) => x.f)
    const random = await cmp(flows, shuffled)
    expect(random.counts.matched).toBe(2000)
    expect(random.peakHeld).toBeLessThan(1200)
    // worst cases: nothing in common, or opposite orders
    expect((await cmp(flows, [])).peakHeld).toBe(2000)
    expect((await cmp(flows, [...flows].reverse())).peakHeld).toBeLessThanOrEqual(2000)
  })

  it('applies a filter per side (kernel tables of both nodes after a commit)', async () => {
    const r = await cmp(sample('kernel.txt'), sample('kernel.xml'), { activeFilter: FILTER, standbyFilter: FILTER })
    expect(r.counts).toMatchObject({ ignored: { active: 4, standby: 4 }, matched: 17, missing: 0, extra: 0, mismatched: 0 })
  })

  it('stops on abort', async () => {
    const ac = new AbortController()
    async function* endless() {
      for (let i = 0; ; i++) {
        if (i === 5000) ac.abort(new Error('stop now'))
        yield tcp(i % 60000)
      }
    }
    await expect(compareFlows(endless(), [], { signal: ac.signal })).rejects.toThrow('stop now')
  })
})

describe('sync filter', () => {
  const keep = compileSyncFilter({ ignoreAddresses: ['192.168.0.41', '10.0.0.0/8', 'fd00::1', 'fd01::/16'], acceptProtocols: ['tcp', 17, 'IPv6-ICMP'] })
  const f = (src: string, dst: string, reply?: string, protonum = 6): Flow => ({
    proto: '', protonum, orig: { src, dst, sport: 1, dport: 2 }, ...(reply ? { reply: { src: reply, dst: src, sport: 2, dport: 1 } } : {}),
  })

  it('ignores by original source or reply source (the real peer after DNAT), addresses or prefixes', () => {
    expect(keep(f('192.168.0.41', '1.1.1.1'))).toBe(false)
    expect(keep(f('1.1.1.1', '192.168.0.41'))).toBe(false) // reply-less: the original destination
    expect(keep(f('1.1.1.1', '192.168.0.60', '10.2.3.4'))).toBe(false) // DNAT to an ignored address
    expect(keep(f('1.1.1.1', '192.168.0.41', '192.168.1.60'))).toBe(true) // DNAT away from it
    expect(keep(f('10.255.0.1', '1.1.1.1'))).toBe(false)
    expect(keep(f('11.0.0.1', '1.1.1.1'))).toBe(true)
    expect(keep(f('fd00:0:0::1', 'fd02::1'))).toBe(false) // another spelling of fd00::1
    expect(keep(f('fd00::1', 'fd02::1'))).toBe(false)
    expect(keep(f('fd02::5', 'fd01:abcd::1'))).toBe(false)
    expect(keep(f('::ffff:192.168.0.41', 'fd02::1'))).toBe(true)
  })

  it('drops protocols outside Protocol Accept', () => {
    expect(keep(f('1.1.1.1', '2.2.2.2', undefined, 17))).toBe(true)
    expect(keep(f('fd02::1', 'fd02::2', undefined, 58))).toBe(true)
    expect(keep(f('1.1.1.1', '2.2.2.2', undefined, 132))).toBe(false)
    expect(compileSyncFilter({ ignoreProtocols: ['GRE'] })(f('1.1.1.1', '2.2.2.2', undefined, 47))).toBe(false)
  })

  it('matches IPv6 addresses as conntrack prints them, whatever the spelling in the Filter', () => {
    const k = compileSyncFilter({ ignoreAddresses: ['FD00:10:0:0::11', '::102:304'] })
    expect(k(f('fd00:10::11', 'fd00:20::7'))).toBe(false) // canonical text, a Set lookup
    expect(k(f('fd00:20::7', 'fd00:10::60', 'fd00:10::11'))).toBe(false) // DNAT66 to an ignored address
    expect(k(f('fd00:10::12', 'fd00:20::7'))).toBe(true)
    // inet_ntop writes an address with six leading zero groups as a dotted quad
    expect(k(f('::1.2.3.4', 'fd00:20::7'))).toBe(false)
    expect(k(f('1.2.3.4', 'fd00:20::7'))).toBe(true) // the IPv4 address is another one
    const pre = compileSyncFilter({ ignoreAddresses: ['fd00:250::/64', '2001:db8:0:8000::/49'] })
    expect(pre(f('fd00:250::2', 'fd00:250::1'))).toBe(false)
    expect(pre(f('fd00:251::2', 'fd00:20::7'))).toBe(true)
    expect(pre(f('2001:db8:0:ffff::1', 'fd00:20::7'))).toBe(false)
    expect(pre(f('2001:db8:0:7fff::1', 'fd00:20::7'))).toBe(true)
  })

  it('refuses what it cannot read', () => {
    expect(() => compileSyncFilter({ ignoreAddresses: ['192.168.0.300'] })).toThrow(/Address Ignore: "192.168.0.300"/)
    expect(() => compileSyncFilter({ ignoreAddresses: ['10.0.0.0/33'] })).toThrow(/Address Ignore/)
    expect(() => compileSyncFilter({ ignoreAddresses: ['fd00::/129'] })).toThrow(/Address Ignore: "fd00::\/129"/)
    expect(() => compileSyncFilter({ ignoreAddresses: ['fd00:::1'] })).toThrow(/Address Ignore: "fd00:::1"/)
    expect(() => compileSyncFilter({ acceptProtocols: ['TPC'] })).toThrow(/Protocol Accept: unknown protocol "TPC"/)
  })
})

describe('IPv6 (real traffic, make-samples-ipv6.sh)', () => {
  // the Filter conntrackd ran with while the samples were taken, read from its own file
  const FILTER6 = {
    acceptProtocols: ['TCP', 'UDP', 'ICMP', 'IPv6-ICMP'],
    ignoreAddresses: ['127.0.0.1', '::1', '192.168.10.11', '192.168.20.11', 'fd00:10::11', 'fd00:20::11', 'fd00:250::1'],
  }
  const v4only = (flows: Flow[]) => flows.filter((f) => !f.orig.src.includes(':'))

  it('FILTER6 is the Filter of the real conntrackd.conf: IPv4_address and IPv6_address entries', () => {
    const conf = readFileSync(DIR + 'ipv6-conntrackd-a.conf', 'utf8')
    const ignore = conf.slice(conf.indexOf('Address Ignore'))
    expect([...ignore.matchAll(/^\s*IPv[46]_address (\S+)$/gm)].map((m) => m[1])).toEqual(FILTER6.ignoreAddresses)
    expect(conf).toMatch(/Protocol Accept \{ TCP UDP ICMP IPv6-ICMP \}/)
  })

  it('the kernel dump (both families) converges with the external cache, the Filter leaving out what conntrackd did', async () => {
    const r = await cmp(sample('ipv6-kernel.txt'), sample('ipv6-external.txt'), { activeFilter: FILTER6 })
    // left out: 8 VRRP and 2 IGMP entries (Protocol Accept), the sync traffic both ways and the
    // flow to fd00:10::11 (Address Ignore: an own address as original or reply source)
    expect(r.counts).toMatchObject({ active: 8, standby: 8, ignored: { active: 13, standby: 0 }, matched: 8, missing: 0, extra: 0, mismatched: 0 })
    expect(r.converged).toBe(true)
    const xml = await cmp(sample('ipv6-kernel.xml'), sample('ipv6-external.xml').filter((f) => f.orig.src.includes(':')), { activeFilter: FILTER6 })
    expect(xml.counts).toMatchObject({ matched: 6, missing: 0, extra: 0, mismatched: 0 })
  })

  it('an IPv4-only kernel dump (a bare -L before 1.4.7, or -f ipv4) leaves every IPv6 entry as extra', async () => {
    const r = await cmp(v4only(sample('ipv6-kernel.txt')), sample('ipv6-external.txt'), { activeFilter: FILTER6 })
    expect(r.counts).toMatchObject({ matched: 2, extra: 6, missing: 0 })
    expect(r.extra.map((f) => f.orig.sport ?? f.proto).sort()).toEqual([41001, 41002, 41003, 41004, 41005, 'icmpv6'].sort())
  })

  it('compares NAT66 reply tuples between the kernel and the internal cache', async () => {
    const kernel = sample('ipv6-kernel.txt')
    const ok = await cmp(kernel, sample('ipv6-internal.txt'), { activeFilter: FILTER6 })
    expect(ok.counts).toMatchObject({ matched: 8, missing: 0, extra: 0, mismatched: 0 })
    // the standby's copy of the DNAT66 flow points at another server: a reply mismatch
    const other = sample('ipv6-internal.txt').map((f) => (f.orig.sport === 41002 ? { ...f, reply: { ...f.reply!, src: 'fd00:20::8' } } : f))
    const bad = await cmp(kernel, other, { activeFilter: FILTER6 })
    expect(bad.counts).toMatchObject({ matched: 8, mismatched: 1 })
    expect(bad.mismatched[0]).toMatchObject({
      key: '6 fd00:10::100 fd00:10::60 41002 8080 0',
      fields: ['reply'],
      active: { reply: { src: 'fd00:20::7', sport: 80 } },
      standby: { reply: { src: 'fd00:20::8', sport: 80 } },
    })
    // an un-NATed standby copy of the SNAT66 flow differs too
    const plain = sample('ipv6-internal.txt').map((f) => (f.orig.sport === 41003 ? { ...f, reply: { src: f.orig.dst, dst: f.orig.src, sport: f.orig.dport!, dport: f.orig.sport! } } : f))
    expect((await cmp(kernel, plain, { activeFilter: FILTER6 })).mismatched.map((m) => [m.key, m.fields])).toEqual([['6 fd00:10::100 fd00:20::7 41003 9000 0', ['reply']]])
  })

  it('reports IPv6 differences with samples rebuilt from the text key, and carries them across polls', async () => {
    const kernel = sample('ipv6-kernel.txt')
    const external = sample('ipv6-external.txt').filter((f) => f.orig.sport !== 41001 && f.proto !== 'icmpv6')
    const t0 = 9_000_000
    const p1 = await compareFlows(kernel, external, { activeFilter: FILTER6, graceSeconds: 5, now: t0 })
    // kernel ages (delta-time=2) are under the grace window: young, not missing
    expect(p1.counts).toMatchObject({ young: 2, missing: 0 })
    const old = kernel.map((f) => ({ ...f, age: 60 }))
    const p2 = await compareFlows(old, external, { activeFilter: FILTER6, graceSeconds: 5, now: t0 })
    expect(p2.counts).toMatchObject({ missing: 2, matched: 6 })
    expect(p2.missing).toContainEqual({ proto: 'tcp', protonum: 6, state: 'ESTABLISHED', mark: 0, orig: { src: 'fd00:10::100', dst: 'fd00:20::7', sport: 41001, dport: 443 }, reply: { src: 'fd00:20::7', dst: 'fd00:10::100', sport: 443, dport: 41001 } })
    expect(p2.missing).toContainEqual({ proto: 'icmpv6', protonum: 58, mark: 0, orig: { src: 'fd00:10::100', dst: 'fd00:20::7' }, reply: { src: 'fd00:20::7', dst: 'fd00:10::100' } })
    // without ages: pending first, reported once the difference persisted for the window
    const noAge = kernel.map(({ age: _a, ...f }) => f as Flow)
    const q1 = await compareFlows(noAge, external, { activeFilter: FILTER6, graceSeconds: 5, now: t0 })
    expect(q1.counts).toMatchObject({ pending: 2, missing: 0 })
    const q2 = await compareFlows(noAge, external, { activeFilter: FILTER6, graceSeconds: 5, now: t0 + 5000, previous: q1.memo })
    expect(q2.counts).toMatchObject({ pending: 0, missing: 2 })
    expect([...q2.memo.keys()].sort()).toEqual(['m58 fd00:10::100 fd00:20::7 - - 0', 'm6 fd00:10::100 fd00:20::7 41001 443 0'])
  })

  it('keys IPv6 flows apart from IPv4 ones with the same numbers, and by zone', async () => {
    const v4: Flow = { proto: 'udp', protonum: 17, orig: { src: '10.0.0.1', dst: '10.0.0.2', sport: 53, dport: 53 } }
    const v6: Flow = { proto: 'udp', protonum: 17, orig: { src: 'fd00::a00:1', dst: 'fd00::a00:2', sport: 53, dport: 53 } }
    const r = await cmp([v4, v6, { ...v6, zone: 2 }], [v6])
    expect(r.counts).toMatchObject({ matched: 1, missing: 2, extra: 0 })
    expect(r.missing).toEqual(expect.arrayContaining([v4, { ...v6, zone: 2 }]))
  })
})
