import { type Flow, type Tuple, hasPorts, protoName } from './flow.js'
import { type Chunk, type FlowParser, DumpParseError, bytesOf, bytesStartWith, joinBytes, nameHash, textAt, uintAt } from './source.js'

/*
 * Incremental parser for the one-line-per-entry text form, the compact one (about a third of the
 * XML's size):
 *   conntrack -L [-f ipv4|ipv6] [-o extended,id,ktimestamp,...]
 *     [ipv4     2 ]tcp      6 431999 ESTABLISHED src=.. dst=.. sport=.. dport=.. [packets=.. bytes=..]
 *     [UNREPLIED] src=.. dst=.. sport=.. dport=.. [ASSURED] mark=0 [zone=3] [delta-time=5]
 *     [[start=Wed Dec  2 15:36:56 2026]] use=1 [id=..]
 *   conntrackd -i / -e (no timeout; -e has no reply tuple; age as "[active since 12s]"; mark only
 *   when the kernel sent one, i.e. not for a mark 0 learned from a new-entry event)
 *     tcp      6 ESTABLISHED src=.. dst=.. sport=.. dport=.. [ASSURED] mark=0 [active since 12s]
 * IPv6 entries read the same with inet_ntop's addresses ("src=fd00:10::100"), "icmpv6   58" with
 * type/code/id, and "ipv6     10 " in front only with `-o extended`: conntrackd prints its caches
 * without the layer-3 column (nfct_snprintf flags 0, conntrack-tools src/cache-ct.c), both
 * families in one dump. ICMP tuples read "type=8 code=0 id=1234", so an `id=` right after a
 * tuple's code is the ICMP id and any later one the conntrack id. Works on bytes: numbers are
 * read in place and only addresses and states become strings.
 */

// conntrack's own summary line, should stderr end up in the same stream
const SUMMARY = /^conntrack v[\d.]+ \(conntrack-tools\):/

const enum Key {
  Other,
  Src,
  Dst,
  Sport,
  Dport,
  Type,
  Code,
  Id,
  Counter,
  Mark,
  Zone,
  Delta,
}

// Field names as the hash the scanner computes while reading a token.
const H_SRC = nameHash('src')
const H_DST = nameHash('dst')
const H_SPORT = nameHash('sport')
const H_DPORT = nameHash('dport')
const H_SRCKEY = nameHash('srckey')
const H_DSTKEY = nameHash('dstkey')
const H_TYPE = nameHash('type')
const H_CODE = nameHash('code')
const H_ID = nameHash('id')
const H_PACKETS = nameHash('packets')
const H_BYTES = nameHash('bytes')
const H_MARK = nameHash('mark')
const H_ZONE = nameHash('zone')
const H_DELTA = nameHash('delta-time')

function keyOf(h: number): Key {
  switch (h) {
    case H_SRC: return Key.Src
    case H_DST: return Key.Dst
    case H_SPORT: case H_SRCKEY: return Key.Sport
    case H_DPORT: case H_DSTKEY: return Key.Dport
    case H_TYPE: return Key.Type
    case H_CODE: return Key.Code
    case H_ID: return Key.Id
    case H_PACKETS: case H_BYTES: return Key.Counter
    case H_MARK: return Key.Mark
    case H_ZONE: return Key.Zone
    case H_DELTA: return Key.Delta
  }
  return Key.Other
}

export class FlowTextParser implements FlowParser {
  private rest: Buffer | undefined
  private line = 0

  constructor(
    private readonly onFlow: (f: Flow) => void,
    private readonly source = 'text',
  ) {}

  write(chunk: Chunk): void {
    const b = bytesOf(chunk)
    let start = 0
    if (this.rest) {
      // finish the carried partial line on its own: the chunk itself is never copied
      const nl = b.indexOf(10)
      if (nl < 0) {
        this.rest = joinBytes(this.rest, b)
        return
      }
      const line = joinBytes(this.rest, b.subarray(0, nl))
      this.rest = undefined
      this.parseLine(line, 0, line.length)
      start = nl + 1
    }
    for (let nl = b.indexOf(10, start); nl >= 0; nl = b.indexOf(10, start)) {
      this.parseLine(b, start, nl)
      start = nl + 1
    }
    // keep a copy of the tail: the caller may reuse its buffer
    this.rest = start < b.length ? Buffer.from(b.subarray(start)) : undefined
  }

  end(): void {
    const b = this.rest
    this.rest = undefined
    if (b?.length) this.parseLine(b, 0, b.length)
  }

  private parseLine(b: Buffer, from: number, to: number): void {
    this.line++
    if (to > from && b[to - 1] === 13) to-- // CRLF
    let i = skip(b, from, to)
    if (i >= to) return
    let e = tokenEnd(b, i, to)
    if (e - i === 4 && (bytesStartWith(b, i, 'ipv4') || bytesStartWith(b, i, 'ipv6'))) {
      // `-o extended`: "ipv4     2 " before the protocol
      i = skip(b, tokenEnd(b, skip(b, e, to), to), to)
      e = tokenEnd(b, i, to)
    }
    const nameFrom = i
    const nameTo = e
    i = skip(b, e, to)
    e = tokenEnd(b, i, to)
    const protonum = uintAt(b, i, e)
    if (protonum < 0 || protonum > 255) {
      const text = textAt(b, from, to)
      if (SUMMARY.test(text)) return
      this.fail('protocol', `expected "<name> <number>" at the start of the line, found ${JSON.stringify(text.slice(0, 60))}`)
    }
    const f: Flow = { proto: protoName(protonum), protonum, orig: { src: '', dst: '' } }
    if (f.proto === 'unknown') f.proto = textAt(b, nameFrom, nameTo).toLowerCase()
    i = skip(b, e, to)
    e = tokenEnd(b, i, to)
    const timeout = uintAt(b, i, e)
    if (timeout >= 0) {
      f.timeout = timeout
      i = skip(b, e, to)
      e = tokenEnd(b, i, to)
    }
    const eqAt = b.indexOf(61 /* = */, i)
    if (i < to && b[i] !== 91 /* [ */ && (eqAt < 0 || eqAt >= e)) {
      f.state = textAt(b, i, e)
      i = skip(b, e, to)
    }
    let t: Tuple = f.orig
    let reply: Tuple | undefined
    let inTuples = true
    while (i < to) {
      if (b[i] === 91) {
        // Brackets may hold spaces: "[active since 12s]", "[start=Sun Nov 22 00:23:25 2026]".
        const close = b.indexOf(93 /* ] */, i)
        if (close < 0 || close >= to) this.fail('flags', `unterminated ${JSON.stringify(textAt(b, i, to))}`)
        if (bytesStartWith(b, i, '[ASSURED]')) f.assured = true
        else if (bytesStartWith(b, i, '[UNREPLIED]')) f.unreplied = true
        else if (bytesStartWith(b, i, '[active since ')) f.age = this.num('active since', b, i + 14, close - 1)
        i = skip(b, close + 1, to)
        continue
      }
      // One pass over the token: its end, its "=", and the hash of the name before it.
      let eq = -1
      let h = 0
      for (e = i; e < to; e++) {
        const c = b[e]!
        if (c === 32 || c === 9) break
        if (eq < 0) {
          if (c === 61) eq = e
          else h = (Math.imul(h, 31) + c) | 0
        }
      }
      if (eq < 0) this.fail('field', `unexpected token ${JSON.stringify(textAt(b, i, e))}`)
      const v = eq + 1
      switch (keyOf(h)) {
        case Key.Src:
          if (!inTuples || reply) this.fail('src', 'more than two tuples on one line')
          if (t.src) t = reply = { src: '', dst: '' }
          t.src = textAt(b, v, e)
          break
        case Key.Dst:
          t.dst = textAt(b, v, e)
          break
        case Key.Sport:
          t.sport = this.num('sport', b, v, e)
          break
        case Key.Dport:
          t.dport = this.num('dport', b, v, e)
          break
        case Key.Type:
          t.type = this.num('type', b, v, e)
          break
        case Key.Code:
          t.code = this.num('code', b, v, e)
          break
        case Key.Id:
          if (inTuples && t.code !== undefined && t.id === undefined) t.id = this.num('icmp id', b, v, e)
          else {
            inTuples = false
            f.id = this.num('id', b, v, e)
          }
          break
        case Key.Counter:
          break // packets=/bytes= sit inside the tuples
        case Key.Mark:
          inTuples = false
          f.mark = this.num('mark', b, v, e)
          break
        case Key.Zone:
          inTuples = false
          f.zone = this.num('zone', b, v, e)
          break
        case Key.Delta:
          inTuples = false
          f.age = this.num('delta-time', b, v, e)
          break
        default:
          inTuples = false // use=, secmark=, secctx=, labels=, helper=, zone-orig= ...
      }
      i = skip(b, e, to)
    }
    const o = f.orig
    if (!o.src || !o.dst) this.fail('src', 'entry without an original src=/dst=')
    if (hasPorts(protonum) && protonum !== 47 && (o.sport === undefined || o.dport === undefined))
      this.fail('sport', `${f.proto} entry without original sport=/dport=`)
    if (reply) f.reply = reply
    this.onFlow(f)
  }

  private num(field: string, b: Buffer, from: number, to: number): number {
    const n = uintAt(b, from, to)
    if (n < 0) this.fail(field, `expected a number, found ${JSON.stringify(textAt(b, from, to))}`)
    return n
  }

  private fail(field: string, detail: string): never {
    throw new DumpParseError(this.source, this.line, field, detail)
  }
}

/** First index at or after i (before to) that is not a space or tab. */
function skip(b: Uint8Array, i: number, to: number): number {
  while (i < to && (b[i] === 32 || b[i] === 9)) i++
  return i
}

/** End of the token starting at i. */
function tokenEnd(b: Uint8Array, i: number, to: number): number {
  while (i < to && b[i] !== 32 && b[i] !== 9) i++
  return i
}
