import { createReadStream, readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import {
  DumpParseError,
  type Flow,
  FlowTextParser,
  FlowXmlParser,
  dumpCommand,
  flowKey,
  isNat,
  parseFlows,
  parseFlowsSync,
} from '@hafw/verify'

// Real conntrack-tools 1.4.7 output (test/fixtures/conntrack/make-samples.sh made them).
const DIR = 'test/fixtures/conntrack/'
const read = (f: string) => readFileSync(DIR + f, 'utf8')
const parse = (f: string) => parseFlowsSync(read(f), { source: f })
const byPort = (flows: Flow[], sport: number) => flows.find((f) => f.orig.sport === sport)!
const keys = (flows: Flow[]) => flows.map(flowKey).sort()

describe('conntrack -L (text)', () => {
  const flows = parse('kernel.txt')

  it('reads every entry of the real dump', () => {
    expect(flows).toHaveLength(read('kernel.txt').trim().split('\n').length)
    expect(new Set(flows.map((f) => f.proto))).toEqual(new Set(['tcp', 'udp', 'icmp', 'icmpv6', 'sctp', 'gre']))
  })

  it('keeps timeout, state, flags, mark and both tuples', () => {
    const ssh = byPort(flows, 40001)
    expect(ssh).toMatchObject({
      proto: 'tcp', protonum: 6, state: 'ESTABLISHED', mark: 1, assured: true,
      orig: { src: '192.168.10.5', dst: '192.168.20.7', sport: 40001, dport: 22 },
      reply: { src: '192.168.20.7', dst: '192.168.10.5', sport: 22, dport: 40001 },
    })
    expect(ssh.timeout).toBeGreaterThan(431_000)
    expect(isNat(ssh)).toBe(false)
    expect(byPort(flows, 40020)).toMatchObject({ state: 'SYN_RECV', unreplied: true })
  })

  it('reads NAT from the reply tuple (DNAT and SNAT of seed 001)', () => {
    const dnat = byPort(flows, 40002)
    expect(dnat.reply).toEqual({ src: '192.168.1.60', dst: '192.168.10.5', sport: 25, dport: 40002 })
    expect(isNat(dnat)).toBe(true)
    const snat = byPort(flows, 40003)
    expect(snat).toMatchObject({ state: 'FIN_WAIT', mark: 16, reply: { src: '198.51.100.9', dst: '192.168.0.60' } })
    expect(isNat(snat)).toBe(true)
  })

  it('reads zones, UDP, IPv6, GRE keys and SCTP states', () => {
    expect(byPort(flows, 50000)).toMatchObject({ proto: 'udp', zone: 3, assured: true })
    expect(byPort(flows, 40024)).toMatchObject({ state: 'SYN_SENT', zone: 5 })
    expect(byPort(flows, 40004)).toMatchObject({ orig: { src: 'fd00:10::5', dst: 'fd00:20::7' }, state: 'ESTABLISHED' })
    expect(flows.find((f) => f.proto === 'gre')).toMatchObject({ orig: { sport: 0x10, dport: 0x20 }, reply: { sport: 0x20, dport: 0x10 } })
    expect(flows.find((f) => f.proto === 'sctp')).toMatchObject({ state: 'ESTABLISHED', orig: { sport: 5000, dport: 5001 } })
  })

  it('reads ICMP type/code/id and tells them from the conntrack id', () => {
    const pings = flows.filter((f) => f.proto === 'icmp').sort((a, b) => a.orig.id! - b.orig.id!)
    expect(pings.map((p) => p.orig)).toEqual([
      { src: '192.168.10.5', dst: '192.168.20.7', type: 8, code: 0, id: 77 },
      { src: '192.168.10.5', dst: '192.168.20.7', type: 8, code: 0, id: 78 },
    ])
    expect(pings[0]!.reply).toMatchObject({ type: 0, code: 0, id: 77 })
    expect(pings[0]!.id).toBeUndefined()
    const ext = parse('kernel-extended.txt').filter((f) => f.proto === 'icmp')
    for (const p of ext) {
      expect(p.orig.id).toBe(p.reply!.id)
      expect(p.id).toBeGreaterThan(1000) // the conntrack id after use=1
    }
    expect(flows.find((f) => f.proto === 'icmpv6')).toMatchObject({ orig: { type: 128, id: 9 }, reply: { type: 129, id: 9 }, unreplied: true })
  })

  it('reads accounting and timestamp columns: counters skipped, delta-time as age', () => {
    // created a second or two before the dump, after nf_conntrack_timestamp was switched on
    expect(byPort(flows, 40031)).toMatchObject({ proto: 'udp', age: expect.any(Number), unreplied: true, reply: { sport: 123 } })
    expect(byPort(flows, 40031).age).toBeLessThan(10)
    const ext = parse('kernel-extended.txt')
    expect(keys(ext)).toEqual(keys(flows))
    expect(byPort(ext, 40034)).toMatchObject({ age: byPort(flows, 40031).age, assured: true, mark: 0 })
    expect(ext.every((f) => typeof f.id === 'number')).toBe(true)
    expect(byPort(ext, 40001).age).toBeUndefined()
  })
})

describe('conntrack -L -o xml', () => {
  const xml = parse('kernel.xml')
  const txt = parse('kernel.txt')

  it('yields the same flows as the text form', () => {
    expect(keys(xml)).toEqual(keys(txt))
    for (const f of xml) {
      const t = txt.find((x) => flowKey(x) === flowKey(f))!
      expect(f.mark).toBe(t.mark)
      if (f.proto === 'tcp') expect(f.state).toBe(t.state)
      if (f.proto !== 'icmp' && f.proto !== 'icmpv6') expect(f.reply).toEqual(t.reply)
      expect(typeof f.id).toBe('number')
    }
  })

  it('has no ICMP type/code/id in XML (libnetfilter_conntrack prints an empty layer4)', () => {
    const pings = xml.filter((f) => f.proto === 'icmp')
    expect(pings).toHaveLength(2)
    expect(pings[0]!.orig).toEqual({ src: '192.168.10.5', dst: '192.168.20.7' })
  })

  it('drops SCTP states, which the XML prints through the TCP names', () => {
    expect(read('kernel.xml')).toMatch(/protoname="sctp".*?<state>FIN_WAIT<\/state>/)
    expect(xml.find((f) => f.proto === 'sctp')!.state).toBeUndefined()
  })

  it('reads deltatime as age with -o xml,ktimestamp', () => {
    const ts = parse('kernel-ktimestamp.xml')
    expect(byPort(ts, 40031).age).toBe(byPort(parse('kernel.txt'), 40031).age)
    expect(byPort(ts, 40001).age).toBeUndefined()
    expect(ts.map((f) => f.id).sort()).toEqual(parse('kernel-extended.txt').map((f) => f.id).sort())
  })
})

describe('conntrackd -i / -e caches', () => {
  it('reads the internal cache in both forms; the text form carries the age', () => {
    const txt = parse('internal.txt')
    const xml = parse('internal.xml')
    expect(keys(xml)).toEqual(keys(txt))
    expect(txt.every((f) => typeof f.age === 'number' && f.timeout === undefined)).toBe(true)
    expect(xml.every((f) => f.age === undefined)).toBe(true)
    expect(byPort(txt, 40002).reply).toEqual(byPort(xml, 40002).reply)
    // the filtered entries (10.9.0.0/16, own sync address, SCTP, GRE) never reach the cache
    expect(txt.some((f) => f.orig.src === '10.9.1.1' || f.proto === 'sctp' || f.proto === 'gre')).toBe(false)
  })

  it('reads the external cache: no reply tuple, even for the DNAT flow', () => {
    for (const f of ['external.txt', 'external.xml']) {
      const flows = parse(f)
      expect(flows).toHaveLength(16)
      expect(flows.every((x) => x.reply === undefined && x.mark !== undefined)).toBe(true)
      expect(byPort(flows, 40002)).toMatchObject({ state: 'ESTABLISHED', orig: { dst: '192.168.0.60', dport: 25 } })
    }
    expect(read('external.xml')).toContain('<meta direction="reply"><layer3 protonum="0" protoname="unknown"><src></src>')
    expect(keys(parse('external.txt'))).toEqual(keys(parse('external.xml')))
  })
})

describe('streaming', () => {
  it('gives the same result for any chunking, bytes or strings', () => {
    for (const f of ['kernel.xml', 'kernel-ktimestamp.xml', 'internal.xml', 'kernel.txt', 'kernel-extended.txt', 'external.txt', 'ipv6-kernel.txt', 'ipv6-kernel-extended.txt', 'ipv6-kernel.xml', 'ipv6-internal.txt', 'ipv6-external.xml']) {
      const whole = parse(f)
      const buf = readFileSync(DIR + f)
      for (const size of [1, 2, 7, 64, 1000]) {
        const out: Flow[] = []
        const p = f.endsWith('.xml') ? new FlowXmlParser((x) => out.push(x)) : new FlowTextParser((x) => out.push(x))
        for (let i = 0; i < buf.length; i += size) p.write(size % 2 ? buf.subarray(i, i + size) : buf.subarray(i, i + size).toString())
        p.end()
        expect(out, `${f} in chunks of ${size}`).toEqual(whole)
      }
    }
  })

  it('emits flows as chunks arrive, before the dump ends', async () => {
    // parseFlows parses per 64 KB: use dumps of a few hundred KB (the samples repeated)
    for (const f of ['internal.xml', 'kernel.txt']) {
      const text = read(f).trimEnd().concat('\n').repeat(40)
      const half = text.indexOf('\n', text.length / 2) + 1
      let seenBeforeSecondHalf = -1
      let seen = 0
      async function* source() {
        yield text.slice(0, half)
        seenBeforeSecondHalf = seen
        yield text.slice(half)
      }
      for await (const _ of parseFlows(source())) seen++
      expect(seen).toBe(parse(f).length * 40)
      expect(seenBeforeSecondHalf).toBeGreaterThan(seen / 3)
    }
  })

  it('reads a Node stream and detects the format', async () => {
    for (const f of ['kernel.xml', 'external.txt']) {
      const flows: Flow[] = []
      for await (const batch of parseFlows(createReadStream(DIR + f, { highWaterMark: 333 })).batches()) flows.push(...batch)
      expect(flows).toEqual(parse(f))
    }
  })

  it('decodes UTF-8 split across chunks and skips unknown elements and comments', () => {
    const xml = Buffer.from(
      '<?xml version="1.0"?><!-- a <comment> --><conntrack><flow><meta direction="original"><layer3 protonum="2" protoname="ipv4"><src>10.0.0.1</src><dst>10.0.0.2</dst></layer3>' +
        '<layer4 protonum="6" protoname="tcp"><sport>1</sport><dport>2</dport></layer4></meta><meta direction="independent"><secctx>système_u</secctx>' +
        '<state>ESTABLISHED</state><mark>4294967295</mark><labels><label>x&amp;y</label></labels></meta></flow></conntrack>',
    )
    const cut = xml.indexOf('è') + 1 // inside the two-byte character
    const out: Flow[] = []
    const p = new FlowXmlParser((f) => out.push(f))
    p.write(xml.subarray(0, cut))
    p.write(xml.subarray(cut))
    p.end()
    expect(out).toEqual([{ proto: 'tcp', protonum: 6, orig: { src: '10.0.0.1', dst: '10.0.0.2', sport: 1, dport: 2 }, state: 'ESTABLISHED', mark: 4294967295 }])
  })
})

describe('bad input', () => {
  const fails = (format: 'xml' | 'text', input: string) => {
    try {
      parseFlowsSync(input, { format, source: 'fw1: dump' })
    } catch (e) {
      expect(e).toBeInstanceOf(DumpParseError)
      return (e as Error).message
    }
    throw new Error('no error')
  }

  it('names source, line and field', () => {
    const lines = read('kernel.txt').split('\n')
    lines[3] = lines[3]!.replace(/sport=\d+/, 'sport=http')
    expect(fails('text', lines.join('\n'))).toMatch(/^fw1: dump:4: sport: expected a number, found "http"/)
    expect(fails('text', 'tcp 6 431999 ESTABLISHED dst=1.2.3.4 sport=1 dport=2\n')).toMatch(/^fw1: dump:1: src: entry without an original src=\/dst=/)
    expect(fails('text', "can't connect: is conntrackd running?\n")).toMatch(/^fw1: dump:1: protocol:/)
    const xml = read('kernel.xml')
    expect(fails('xml', xml.slice(0, xml.length / 2))).toMatch(/^fw1: dump:\d+: flow: dump ends inside a <flow> element/)
    expect(fails('xml', xml.replace('<mark>16</mark>', '<mark>sixteen</mark>'))).toMatch(/^fw1: dump:\d+: mark: expected a number, found "sixteen"/)
    expect(fails('xml', 'Operation not permitted\n')).toMatch(/^fw1: dump:1: xml: unexpected text "Operation not permitted"/)
    const line = xml.split('\n').findIndex((l) => l.includes('<mark>16</mark>')) + 1
    expect(fails('xml', xml.replace('<mark>16</mark>', '<mark>-1</mark>'))).toContain(`fw1: dump:${line}: mark:`)
  })

  it('skips conntrack\'s own summary line if stderr was merged', () => {
    const t = read('kernel.txt') + 'conntrack v1.4.7 (conntrack-tools): 21 flow entries have been shown.\n'
    expect(parseFlowsSync(t)).toHaveLength(21)
  })
})

// Real IPv6 traffic through a dual-stack pair (make-samples-ipv6.sh): a routed TCP flow (41001),
// DNAT66 (41002), SNAT66 (41003), a closed one (41004), UDP (41005), a flow to the firewall's own
// address (41006), IPv4 alongside (41011), pings over both families, keepalived's VRRP adverts.
describe('IPv6 (real traffic, conntrack-tools 1.4.7)', () => {
  const isV6 = (f: Flow) => f.orig.src.includes(':')
  const kernel = parse('ipv6-kernel.txt')

  it('the kernel dump verify runs lists IPv4, then IPv6, each entry once', () => {
    // the fixture is that command's output, taken as it is written in collect.ts
    expect(read('make-samples-ipv6.sh')).toContain(`ca sh -c '${dumpCommand('kernel', '/unused')}'`)
    expect(kernel).toHaveLength(read('ipv6-kernel.txt').trim().split('\n').length)
    const first6 = kernel.findIndex(isV6)
    expect(first6).toBeGreaterThan(0)
    expect(kernel.slice(first6).every(isV6)).toBe(true)
    // a bare `conntrack -L` of 1.4.7 asks for every family (AF_UNSPEC): the same entries
    const plain = parse('ipv6-kernel-plain.txt')
    expect(plain.some(isV6)).toBe(true)
    expect(keys(kernel)).toEqual(keys(plain))
    expect(new Set(kernel.map(flowKey)).size).toBe(kernel.length)
  })

  it('reads IPv6 tuples, NAT66 reply tuples and the timestamp columns', () => {
    const routed = byPort(kernel, 41001)
    expect(routed).toMatchObject({
      proto: 'tcp', state: 'ESTABLISHED', assured: true, mark: 0, age: 2,
      orig: { src: 'fd00:10::100', dst: 'fd00:20::7', sport: 41001, dport: 443 },
      reply: { src: 'fd00:20::7', dst: 'fd00:10::100', sport: 443, dport: 41001 },
    })
    expect(isNat(routed)).toBe(false)
    const dnat = byPort(kernel, 41002)
    expect(dnat.orig).toEqual({ src: 'fd00:10::100', dst: 'fd00:10::60', sport: 41002, dport: 8080 })
    expect(dnat.reply).toEqual({ src: 'fd00:20::7', dst: 'fd00:10::100', sport: 80, dport: 41002 })
    expect(isNat(dnat)).toBe(true)
    const snat = byPort(kernel, 41003)
    expect(snat.reply).toEqual({ src: 'fd00:20::7', dst: 'fd00:20::60', sport: 9000, dport: 41003 })
    expect(isNat(snat)).toBe(true)
    expect(byPort(kernel, 41004)).toMatchObject({ state: 'TIME_WAIT', timeout: 118 })
    expect(byPort(kernel, 41005)).toMatchObject({ proto: 'udp', protonum: 17, orig: { dport: 53 } })
    // "[start=Wed Dec  2 15:36:56 2026]" (ktimestamp) holds spaces and is skipped as a whole
    expect(read('ipv6-kernel.txt')).toMatch(/\[start=\w+ \w+ +\d+ [\d:]+ \d+\] use=1/)
  })

  it('reads ICMPv6 type/code/id, VRRP adverts from link-local addresses, IGMP', () => {
    const pings = kernel.filter((f) => f.proto === 'icmpv6')
    expect(pings).toHaveLength(1)
    expect(pings[0]).toMatchObject({ protonum: 58, orig: { src: 'fd00:10::100', dst: 'fd00:20::7', type: 128, code: 0 }, reply: { type: 129, code: 0 } })
    expect(pings[0]!.orig.id).toBe(pings[0]!.reply!.id)
    expect(pings[0]!.id).toBeUndefined() // the ICMPv6 id is the tuple's, not the conntrack id
    const vrrp = kernel.filter((f) => f.protonum === 112)
    expect(vrrp.every((f) => f.proto === 'vrrp' && f.unreplied)).toBe(true)
    expect(vrrp.filter(isV6).map((f) => f.orig.dst)).toEqual(['ff02::12', 'ff02::12', 'ff02::12', 'ff02::12'])
    expect(vrrp.filter(isV6).every((f) => f.orig.src.startsWith('fe80::'))).toBe(true)
    expect(kernel.filter((f) => f.protonum === 2).map((f) => f.proto)).toEqual(['igmp', 'igmp'])
  })

  it('-o extended prefixes "ipv6     10": the same IPv6 flows, with conntrack ids', () => {
    const ext = parse('ipv6-kernel-extended.txt')
    expect(read('ipv6-kernel-extended.txt').split('\n').filter(Boolean).every((l) => l.startsWith('ipv6     10 '))).toBe(true)
    expect(keys(ext)).toEqual(keys(kernel.filter(isV6)))
    expect(ext.every((f) => typeof f.id === 'number' && f.id > 0)).toBe(true)
    const icmp = ext.find((f) => f.proto === 'icmpv6')!
    expect(icmp.orig.id).toBe(3666)
    expect(icmp.id).toBe(347745860)
  })

  it('the XML form gives the same IPv6 flows, NAT66 reply tuples and ages, no ICMPv6 type/id', () => {
    const xml = parse('ipv6-kernel.xml')
    const txt = parse('ipv6-kernel-extended.txt')
    expect(keys(xml)).toEqual(keys(txt))
    for (const f of xml) {
      const t = txt.find((x) => flowKey(x) === flowKey(f))!
      expect(f.id).toBe(t.id)
      expect(f.age).toBe(t.age)
      if (f.proto !== 'icmpv6') expect(f.reply).toEqual(t.reply)
    }
    expect(byPort(xml, 41002).reply).toEqual({ src: 'fd00:20::7', dst: 'fd00:10::100', sport: 80, dport: 41002 })
    expect(xml.find((f) => f.proto === 'icmpv6')!.orig).toEqual({ src: 'fd00:10::100', dst: 'fd00:20::7' })
    expect(xml.filter((f) => f.protonum === 112).every((f) => f.proto === 'vrrp')).toBe(true)
  })

  it('reads conntrackd caches with both families: no layer-3 column, no mark for entries learned from events', () => {
    expect(read('ipv6-internal.txt')).not.toMatch(/^ipv[46] /m)
    const internal = parse('ipv6-internal.txt')
    const external = parse('ipv6-external.txt')
    expect(internal).toHaveLength(8)
    expect(internal.filter(isV6)).toHaveLength(6)
    expect(keys(parse('ipv6-internal.xml'))).toEqual(keys(internal))
    expect(keys(parse('ipv6-external.xml'))).toEqual(keys(external))
    expect(keys(external)).toEqual(keys(internal))
    // conntrackd prints a mark only when the kernel sent one: not for mark 0 in a new-entry event
    expect([...internal, ...external].every((f) => f.mark === undefined && typeof f.age === 'number')).toBe(true)
    expect(byPort(internal, 41002).reply).toEqual(byPort(kernel, 41002).reply)
    expect(byPort(internal, 41003).reply).toEqual(byPort(kernel, 41003).reply)
    expect(external.every((f) => f.reply === undefined)).toBe(true)
    expect(internal.find((f) => f.proto === 'icmpv6')).toMatchObject({ orig: { type: 128, code: 0, id: 3666 }, reply: { type: 129, id: 3666 } })
    expect(external.find((f) => f.proto === 'icmpv6')).toMatchObject({ orig: { type: 128, code: 0, id: 3666 } })
    // the flow to fw6a's own address and the sync traffic never reach the cache (Address Ignore)
    expect(internal.some((f) => f.orig.sport === 41006 || f.orig.dport === 3780 || f.protonum === 112)).toBe(false)
  })
})
