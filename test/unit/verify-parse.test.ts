import { createReadStream, readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import {
  DumpParseError,
  type Flow,
  FlowTextParser,
  FlowXmlParser,
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
    for (const f of ['kernel.xml', 'kernel-ktimestamp.xml', 'internal.xml', 'kernel.txt', 'kernel-extended.txt', 'external.txt']) {
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
