import { type Flow, type Tuple, hasPorts, protoName } from './flow.js'
import { type Chunk, type FlowParser, DumpParseError, bytesStartWith, countNewlines, joinBytes, nameHash, textAt, uintAt } from './source.js'

/*
 * Incremental parser for the XML conntrack-tools prints: `conntrack -L -o xml[,id,ktimestamp...]`
 * (one <conntrack> root) and `conntrackd -i -x` / `-e -x` (bare <flow> elements, no root, no
 * declaration). Hand-written rather than saxes: the input is machine-generated, flat and
 * attribute-light, and a byte scanner that recognises element names by a hash computed in place
 * and only makes strings of addresses and states parses it about three times as fast as saxes
 * building the same objects (bench/verify-parse.ts). It still follows XML structure: any element
 * order, unknown elements (counters, timestamp, secctx, labels), comments and declarations
 * skipped, entities decoded, chunks split anywhere, UTF-8 never decoded where it is not needed.
 *
 * Quirks of libnetfilter_conntrack 1.0.9's XML handled here:
 * - ICMP tuples carry no type/code/id (layer4 is empty), so ICMP flows are keyed without them.
 * - `conntrackd -e -x` prints an empty reply (layer3 protonum="0", empty <src/>): no reply tuple.
 * - SCTP and DCCP states are printed through the TCP state names (SCTP ESTABLISHED shows as
 *   FIN_WAIT), so <state> is kept for TCP only.
 */

const enum Dir {
  None,
  Orig,
  Reply,
  Indep,
}

const enum El {
  Other,
  Flow,
  Meta,
  Layer3,
  Layer4,
  // tuple leaves
  Src,
  Dst,
  Sport,
  Dport,
  // independent leaves
  State,
  Timeout,
  Mark,
  Zone,
  Id,
  Delta,
  Assured,
  Unreplied,
}

const EL_NAMES = ['', 'flow', 'meta', 'layer3', 'layer4', 'src', 'dst', 'sport', 'dport', 'state', 'timeout', 'mark', 'zone', 'id', 'deltatime']

// Element names as the hash the scanner computes while reading a tag name.
const H_FLOW = nameHash('flow')
const H_META = nameHash('meta')
const H_L3 = nameHash('layer3')
const H_L4 = nameHash('layer4')
const H_SRC = nameHash('src')
const H_DST = nameHash('dst')
const H_SPORT = nameHash('sport')
const H_DPORT = nameHash('dport')
const H_SRCKEY = nameHash('srckey')
const H_DSTKEY = nameHash('dstkey')
const H_STATE = nameHash('state')
const H_TIMEOUT = nameHash('timeout')
const H_MARK = nameHash('mark')
const H_ZONE = nameHash('zone')
const H_ID = nameHash('id')
const H_DELTA = nameHash('deltatime')
const H_ASSURED = nameHash('assured')
const H_UNREPLIED = nameHash('unreplied')

function elementOf(h: number): El {
  switch (h) {
    case H_FLOW: return El.Flow
    case H_META: return El.Meta
    case H_L3: return El.Layer3
    case H_L4: return El.Layer4
    case H_SRC: return El.Src
    case H_DST: return El.Dst
    case H_SPORT: case H_SRCKEY: return El.Sport
    case H_DPORT: case H_DSTKEY: return El.Dport
    case H_STATE: return El.State
    case H_TIMEOUT: return El.Timeout
    case H_MARK: return El.Mark
    case H_ZONE: return El.Zone
    case H_ID: return El.Id
    case H_DELTA: return El.Delta
    case H_ASSURED: return El.Assured
    case H_UNREPLIED: return El.Unreplied
  }
  return El.Other
}

export class FlowXmlParser implements FlowParser {
  private buf: Buffer = Buffer.alloc(0)
  /** Line number of buf[0]. */
  private line = 1
  private flow: Flow | null = null
  private reply: Tuple = { src: '', dst: '' }
  private replyL3 = -1
  private dir = Dir.None

  constructor(
    private readonly onFlow: (f: Flow) => void,
    private readonly source = 'xml',
  ) {}

  write(chunk: Chunk): void {
    this.buf = joinBytes(this.buf, chunk)
    this.scan()
  }

  end(): void {
    const rest = textAt(this.buf, 0, this.buf.length).trim()
    if (this.flow) this.fail(this.buf.length, 'flow', 'dump ends inside a <flow> element (truncated output?)')
    if (rest) this.fail(0, 'xml', `unterminated markup ${JSON.stringify(rest.slice(0, 40))}`)
  }

  private scan(): void {
    const buf = this.buf
    const len = buf.length
    let pos = 0
    while (pos < len) {
      const lt = find(buf, 60 /* < */, pos)
      if (lt < 0) {
        if (!this.flow) this.blank(buf, pos, len)
        pos = len
        break
      }
      if (lt > pos && !this.flow) this.blank(buf, pos, lt)
      if (lt + 1 >= len) {
        pos = lt
        break
      }
      const c = buf[lt + 1]
      if (c === 47 /* </ */) {
        const gt = find(buf, 62 /* > */, lt + 2)
        if (gt < 0) {
          pos = lt
          break
        }
        if (this.flow) this.close(buf, lt + 2, gt)
        pos = gt + 1
        continue
      }
      if (c === 33 /* <! */ || c === 63 /* <? */) {
        const close = c === 33 && bytesStartWith(buf, lt, '<!--') ? '-->' : '>'
        const e = buf.indexOf(close, lt + 2, 'latin1')
        if (e < 0) {
          pos = lt
          break
        }
        pos = e + close.length
        continue
      }
      const gt = find(buf, 62, lt + 1)
      if (gt < 0) {
        pos = lt
        break
      }
      let h = 0
      for (let i = lt + 1; i < gt; i++) {
        const k = buf[i]!
        if (k === 32 || k === 47 || k === 9 || k === 10 || k === 13) break
        h = (Math.imul(h, 31) + k) | 0
      }
      const el = elementOf(h)
      const selfClosing = buf[gt - 1] === 47
      const f = this.flow
      const dir = this.dir
      const leaf = (el >= El.Src && el <= El.Dport && (dir === Dir.Orig || dir === Dir.Reply)) || (el >= El.State && el <= El.Delta && dir === Dir.Indep)
      if (f && leaf && !selfClosing) {
        // Take the whole leaf at once (text and close tag), or wait for the rest of it.
        const tl = find(buf, 60, gt + 1)
        const tg = tl < 0 ? -1 : find(buf, 62, tl + 1)
        if (tg < 0) {
          pos = lt
          break
        }
        if (buf[tl + 1] !== 47) this.fail(tl, EL_NAMES[el]!, 'expected text only inside this element')
        this.leaf(f, el, buf, gt + 1, tl)
        pos = tg + 1
        continue
      }
      this.open(el, buf, lt + 1, gt)
      pos = gt + 1
    }
    if (pos > 0) {
      this.line += countNewlines(buf, 0, pos)
      this.buf = buf.subarray(pos)
    }
  }

  /** Text outside <flow> must be blank. */
  private blank(buf: Buffer, from: number, to: number): void {
    for (let i = from; i < to; i++) {
      const c = buf[i]
      if (c !== 32 && c !== 10 && c !== 13 && c !== 9) this.fail(i, 'xml', `unexpected text ${JSON.stringify(textAt(buf, i, Math.min(to, i + 60)).split('\n')[0])}`)
    }
  }

  private open(el: El, buf: Buffer, from: number, to: number): void {
    if (el === El.Flow) {
      if (this.flow) this.fail(from, 'flow', 'nested <flow>')
      this.flow = { proto: '', protonum: -1, orig: { src: '', dst: '' } }
      this.reply = { src: '', dst: '' }
      this.replyL3 = -1
      this.dir = Dir.None
      return
    }
    const f = this.flow
    if (!f) return // <conntrack> root
    switch (el) {
      case El.Meta: {
        const v = attrAt(buf, from, to, 'direction=')
        this.dir =
          v < 0 ? Dir.None
          : bytesStartWith(buf, v, 'original') ? Dir.Orig
          : bytesStartWith(buf, v, 'reply') ? Dir.Reply
          : bytesStartWith(buf, v, 'independent') ? Dir.Indep
          : Dir.None
        return
      }
      case El.Layer3:
      case El.Layer4: {
        if (this.dir !== Dir.Orig && this.dir !== Dir.Reply) return
        const v = attrAt(buf, from, to, 'protonum=')
        const n = v < 0 ? -1 : uintAt(buf, v, find(buf, buf[v - 1]!, v))
        if (n < 0) this.fail(from, `${EL_NAMES[el]}.protonum`, 'expected a number')
        if (el === El.Layer4 && this.dir === Dir.Orig) f.protonum = n
        else if (el === El.Layer3 && this.dir === Dir.Reply) this.replyL3 = n
        return
      }
      case El.Assured:
        if (this.dir === Dir.Indep) f.assured = true
        return
      case El.Unreplied:
        if (this.dir === Dir.Indep) f.unreplied = true
        return
    }
  }

  private leaf(f: Flow, el: El, buf: Buffer, from: number, to: number): void {
    if (el === El.Src || el === El.Dst || el === El.State) {
      let v = textAt(buf, from, to)
      if (v.includes('&')) v = decodeEntities(v)
      if (el === El.State) f.state = v
      else {
        const t = this.dir === Dir.Orig ? f.orig : this.reply
        if (el === El.Src) t.src = v
        else t.dst = v
      }
      return
    }
    const n = uintAt(buf, from, to)
    if (n < 0) this.fail(from, EL_NAMES[el]!, `expected a number, found ${JSON.stringify(textAt(buf, from, Math.min(to, from + 40)))}`)
    switch (el) {
      case El.Sport:
        ;(this.dir === Dir.Orig ? f.orig : this.reply).sport = n
        break
      case El.Dport:
        ;(this.dir === Dir.Orig ? f.orig : this.reply).dport = n
        break
      case El.Timeout:
        f.timeout = n
        break
      case El.Mark:
        f.mark = n
        break
      case El.Zone:
        f.zone = n
        break
      case El.Id:
        f.id = n
        break
      case El.Delta:
        f.age = n
        break
    }
  }

  private close(buf: Buffer, from: number, to: number): void {
    if (to - from !== 4) return
    if (bytesStartWith(buf, from, 'meta')) this.dir = Dir.None
    else if (bytesStartWith(buf, from, 'flow')) this.finish(this.flow!, from)
  }

  private finish(f: Flow, at: number): void {
    this.flow = null
    this.dir = Dir.None
    const o = f.orig
    if (f.protonum < 0) this.fail(at, 'layer4', 'flow without an original <layer4 protonum>')
    if (!o.src || !o.dst) this.fail(at, 'src', 'flow without original <src>/<dst>')
    if (hasPorts(f.protonum) && f.protonum !== 47 && (o.sport === undefined || o.dport === undefined))
      this.fail(at, 'sport', `${protoName(f.protonum)} flow without original <sport>/<dport>`)
    f.proto = protoName(f.protonum)
    if (this.replyL3 > 0 && this.reply.src) f.reply = this.reply
    if (f.state !== undefined && f.protonum !== 6) delete f.state
    this.onFlow(f)
  }

  private fail(at: number, field: string, detail: string): never {
    throw new DumpParseError(this.source, this.line + countNewlines(this.buf, 0, at), field, detail)
  }
}

/** Index of byte c at or after i, -1 if none: a plain loop beats Buffer#indexOf's call cost on tags this close. */
function find(b: Buffer, c: number, i: number): number {
  for (const n = b.length; i < n; i++) if (b[i] === c) return i
  return -1
}

/** Index just past the opening quote of attribute `nameEq` ("protonum=") in the tag buf[from, to), or -1. */
function attrAt(buf: Buffer, from: number, to: number, nameEq: string): number {
  const first = nameEq.charCodeAt(0)
  for (let i = from + 1; i < to; i++) {
    if (buf[i] !== first || !bytesStartWith(buf, i, nameEq)) continue
    const c = buf[i - 1]
    const q = buf[i + nameEq.length]
    if ((c === 32 || c === 9 || c === 10) && (q === 34 || q === 39)) return i + nameEq.length + 1
  }
  return -1
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" }

function decodeEntities(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#\d+|\w+);/g, (m, e: string) =>
    e[0] === '#' ? String.fromCodePoint(e[1] === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10)) : (ENTITIES[e] ?? m),
  )
}
