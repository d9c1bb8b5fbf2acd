import { HafwError } from '@hafw/core'
import { type Flow, protoNumber } from './flow.js'

/**
 * What a node's conntrackd `Filter` keeps out of its caches, so the comparison does not report
 * those entries as missing. Mirrors conntrackd 1.4.7 (src/filter.c): an Address Ignore entry
 * matches a flow's original source or its reply source (the real peer after DNAT); a protocol
 * outside Protocol Accept is never synced.
 */
export interface SyncFilter {
  /** `Address Ignore { IPv4_address 192.168.0.41  IPv4_address 10.0.0.0/8  IPv6_address ... }` */
  ignoreAddresses?: readonly string[]
  /** `Protocol Accept { TCP UDP ICMP }`: names (any case, IPv6-ICMP too) or numbers. */
  acceptProtocols?: readonly (string | number)[]
  /** `Protocol Ignore { ... }` */
  ignoreProtocols?: readonly (string | number)[]
}

/** Returns whether conntrackd with this filter would sync the flow. */
export type FlowPredicate = (f: Flow) => boolean

export function compileSyncFilter(filter: SyncFilter): FlowPredicate {
  const protos = (list: readonly (string | number)[] | undefined, what: string): Set<number> | undefined =>
    list &&
    new Set(
      list.map((p) => {
        const n = protoNumber(p)
        if (n === undefined) throw new HafwError(`conntrackd filter: ${what}: unknown protocol ${JSON.stringify(p)}`)
        return n
      }),
    )
  const accept = protos(filter.acceptProtocols, 'Protocol Accept')
  const ignoreP = protos(filter.ignoreProtocols, 'Protocol Ignore')
  // Single addresses (what the template writes) are looked up as the text conntrack prints, so
  // most flows cost a Set lookup, not a parse; prefixes are matched numerically.
  const exact4 = new Set<string>()
  const v4: { net: number; mask: number }[] = []
  const v6: { net: number[]; mask: number[] }[] = []
  for (const a of filter.ignoreAddresses ?? []) {
    const [ip, len, ...extra] = a.split('/')
    const n4 = parseIPv4(ip!)
    const n6 = n4 < 0 ? parseIPv6(ip!) : undefined
    const max = n4 >= 0 ? 32 : 128
    const prefix = len === undefined ? max : /^\d{1,3}$/.test(len) ? Number(len) : NaN
    if ((n4 < 0 && !n6) || extra.length || !(prefix >= 0 && prefix <= max))
      throw new HafwError(`conntrackd filter: Address Ignore: ${JSON.stringify(a)} is not an IPv4/IPv6 address or address/prefix`)
    if (n4 >= 0 && prefix === 32) exact4.add(`${n4 >>> 24}.${(n4 >>> 16) & 255}.${(n4 >>> 8) & 255}.${n4 & 255}`)
    else if (n4 >= 0) {
      const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0
      v4.push({ net: (n4 & mask) >>> 0, mask })
    } else {
      const mask = [0, 1, 2, 3].map((w) => {
        const bits = Math.max(0, Math.min(32, prefix - 32 * w))
        return bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0
      })
      v6.push({ net: n6!.map((x, w) => (x & mask[w]!) >>> 0), mask })
    }
  }
  const ignored = (addr: string | undefined): boolean => {
    if (!addr) return false
    if (exact4.has(addr)) return true
    if (addr.includes(':')) {
      if (!v6.length) return false
      const n = parseIPv6(addr)
      return !!n && v6.some((e) => e.net.every((x, w) => ((n[w]! & e.mask[w]!) >>> 0) === x))
    }
    if (!v4.length) return false
    const n = parseIPv4(addr)
    return n >= 0 && v4.some((e) => ((n & e.mask) >>> 0) === e.net)
  }
  return (f) => {
    if (accept && !accept.has(f.protonum)) return false
    if (ignoreP?.has(f.protonum)) return false
    // Without a reply tuple (external cache) the original destination stands in for the peer.
    return !ignored(f.orig.src) && !ignored(f.reply ? f.reply.src : f.orig.dst)
  }
}

/** Dotted quad to an unsigned 32-bit number, -1 when it is not one. */
export function parseIPv4(s: string): number {
  let n = 0
  let octet = -1
  let dots = 0
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c === 46) {
      if (octet < 0 || ++dots > 3) return -1
      n = n * 256 + octet
      octet = -1
    } else if (c >= 48 && c <= 57) {
      octet = octet < 0 ? c - 48 : octet * 10 + c - 48
      if (octet > 255) return -1
    } else return -1
  }
  return dots === 3 && octet >= 0 ? n * 256 + octet : -1
}

/** IPv6 text (with :: and a dotted tail) to four unsigned 32-bit words, undefined when invalid. */
export function parseIPv6(s: string): number[] | undefined {
  const halves = s.split('::')
  if (halves.length > 2) return undefined
  const groups = (part: string): number[] | undefined => {
    if (part === '') return []
    const out: number[] = []
    const items = part.split(':')
    for (let k = 0; k < items.length; k++) {
      const g = items[k]!
      if (k === items.length - 1 && g.includes('.')) {
        const v4 = parseIPv4(g)
        if (v4 < 0) return undefined
        out.push(Math.floor(v4 / 65536), v4 % 65536)
      } else if (/^[0-9a-fA-F]{1,4}$/.test(g)) out.push(parseInt(g, 16))
      else return undefined
    }
    return out
  }
  const head = groups(halves[0]!)
  const tail = halves.length === 2 ? groups(halves[1]!) : []
  if (!head || !tail) return undefined
  const fill = 8 - head.length - tail.length
  if (halves.length === 2 ? fill < 1 : fill !== 0) return undefined
  const g = [...head, ...new Array<number>(fill).fill(0), ...tail]
  return [0, 1, 2, 3].map((w) => g[2 * w]! * 65536 + g[2 * w + 1]!)
}
