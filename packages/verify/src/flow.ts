/**
 * The normalised connection-tracking entry every parser emits and the comparison consumes,
 * whatever printed it: `conntrack -L` (text or XML) or `conntrackd -i/-e` (text or XML).
 */

/** One direction of a flow. Ports for TCP/UDP/SCTP/DCCP/UDP-Lite, keys for GRE, type/code/id for ICMP. */
export interface Tuple {
  src: string
  dst: string
  sport?: number
  dport?: number
  /** ICMP/ICMPv6 only, and only the text forms print them (the XML forms of 1.4.7 do not). */
  type?: number
  code?: number
  id?: number
}

export interface Flow {
  /** Lower-case protocol name: tcp, udp, icmp, icmpv6, sctp, dccp, gre, udplite, igmp, vrrp, or unknown */
  proto: string
  protonum: number
  orig: Tuple
  /** Absent where the source prints none: `conntrackd -e` (the standby's external cache). */
  reply?: Tuple
  /** Absent when the source prints no mark. */
  mark?: number
  zone?: number
  /** TCP state (ESTABLISHED, TIME_WAIT, ...); SCTP/DCCP states from the text form only. */
  state?: string
  /** Seconds left (kernel table only). */
  timeout?: number
  /** Kernel conntrack id (`-o id` text, always in kernel XML). */
  id?: number
  /**
   * Seconds since the entry was created (kernel `delta-time`, with nf_conntrack_timestamp=1) or
   * since conntrackd cached it (`[active since Ns]` in `conntrackd -i/-e` text).
   */
  age?: number
  assured?: boolean
  unreplied?: boolean
}

const PROTO_NAMES: Record<number, string> = {
  // 112: VRRP, keepalived's adverts (IPv4 and VRRPv3 over IPv6), which conntrack prints as "unknown"
  1: 'icmp', 2: 'igmp', 6: 'tcp', 17: 'udp', 33: 'dccp', 47: 'gre', 58: 'icmpv6', 112: 'vrrp', 132: 'sctp', 136: 'udplite',
}
const PROTO_NUMBERS: Record<string, number> = {
  ...Object.fromEntries(Object.entries(PROTO_NAMES).map(([n, s]) => [s, Number(n)])),
  // conntrackd.conf spells ICMPv6 as IPv6-ICMP
  'ipv6-icmp': 58,
}

export function protoName(protonum: number): string {
  return PROTO_NAMES[protonum] ?? 'unknown'
}

/** Protocol number from a name (any case, conntrackd.conf spellings included) or a number. */
export function protoNumber(p: string | number): number | undefined {
  if (typeof p === 'number') return Number.isInteger(p) && p >= 0 && p < 256 ? p : undefined
  if (/^\d+$/.test(p)) return protoNumber(Number(p))
  return PROTO_NUMBERS[p.toLowerCase()]
}

/** Protocols whose tuples carry ports (or GRE keys): the key includes them. */
export function hasPorts(protonum: number): boolean {
  return protonum === 6 || protonum === 17 || protonum === 132 || protonum === 33 || protonum === 136 || protonum === 47
}

/**
 * Stable identity of a flow: protocol, original tuple and zone. ICMP type/code/id are left out
 * because the XML forms never print them; two pings between the same hosts then share a key
 * and the comparison counts them.
 */
export function flowKey(f: Flow): string {
  const o = f.orig
  const ports = hasPorts(f.protonum) ? `${o.sport ?? '-'} ${o.dport ?? '-'}` : '- -'
  return `${f.protonum} ${o.src} ${o.dst} ${ports} ${f.zone ?? 0}`
}

/** The flow a key stands for (tuple and zone only). */
export function flowFromKey(key: string): Flow {
  const [p, src, dst, sport, dport, zone] = key.split(' ')
  const protonum = Number(p)
  const orig: Tuple = { src: src!, dst: dst! }
  if (sport !== '-') orig.sport = Number(sport)
  if (dport !== '-') orig.dport = Number(dport)
  const f: Flow = { proto: protoName(protonum), protonum, orig }
  if (zone !== '0') f.zone = Number(zone)
  return f
}

/** The reply tuple of an un-NATed flow: the original one reversed. */
export function inverseTuple(t: Tuple): Tuple {
  const r: Tuple = { src: t.dst, dst: t.src }
  if (t.dport !== undefined) r.sport = t.dport
  if (t.sport !== undefined) r.dport = t.sport
  return r
}

/** Whether the reply tuple differs from the reversed original, i.e. the flow is NATed. */
export function isNat(f: Flow): boolean {
  const o = f.orig
  const r = f.reply
  if (!r) return false
  if (r.src !== o.dst || r.dst !== o.src) return true
  return hasPorts(f.protonum) && (r.sport !== o.dport || r.dport !== o.sport)
}

/** Compact text of a reply tuple for comparisons: addresses and ports (ICMP: addresses only). */
export function replyText(f: Flow): string | undefined {
  const r = f.reply
  if (!r) return undefined
  return hasPorts(f.protonum) ? `${r.src} ${r.dst} ${r.sport ?? '-'} ${r.dport ?? '-'}` : `${r.src} ${r.dst}`
}

export function replyFromText(protonum: number, text: string): Tuple {
  const [src, dst, sport, dport] = text.split(' ')
  const t: Tuple = { src: src!, dst: dst! }
  if (hasPorts(protonum)) {
    if (sport !== '-') t.sport = Number(sport)
    if (dport !== '-') t.dport = Number(dport)
  }
  return t
}

/** conntrack's TCP states in kernel order; LISTEN is what older tools print for SYN_SENT2. */
export const TCP_STATES = [
  'NONE', 'SYN_SENT', 'SYN_RECV', 'ESTABLISHED', 'FIN_WAIT', 'CLOSE_WAIT', 'LAST_ACK', 'TIME_WAIT', 'CLOSE', 'SYN_SENT2', 'LISTEN',
] as const

/** Position in a TCP connection's life; the kernel only moves a flow to a higher rank (a reopen aside). */
const TCP_RANK: Record<string, number> = {
  NONE: 0, SYN_SENT: 1, SYN_SENT2: 1, LISTEN: 1, SYN_RECV: 2, ESTABLISHED: 3,
  FIN_WAIT: 4, CLOSE_WAIT: 5, LAST_ACK: 6, TIME_WAIT: 7, CLOSE: 8,
}

/** Whether TCP state `later` can follow `earlier` in one connection's life (equal counts as true). */
export function tcpStateFollows(earlier: string, later: string): boolean {
  const a = TCP_RANK[earlier]
  const b = TCP_RANK[later]
  return a !== undefined && b !== undefined && b >= a
}
