import { HafwError } from '@hafw/core'
import { formatIPv6, groupMask, parseIPv6Groups } from '@hafw/inventory'
import { type Flow, protoNumber } from './flow.js'

/**
 * What a node's conntrackd `Filter` keeps out of its caches, so the comparison does not report
 * those entries as missing. Mirrors conntrackd 1.4.7 (src/filter.c): an Address Ignore entry
 * matches a flow's original source or its reply source (the real peer after DNAT), for IPv4 and
 * IPv6 flows alike; a protocol outside Protocol Accept is never synced.
 */
export interface SyncFilter {
  /** `Address Ignore { IPv4_address 192.168.0.41  IPv4_address 10.0.0.0/8  IPv6_address fd00:10::11 }` */
  ignoreAddresses?: readonly string[]
  /** `Protocol Accept { TCP UDP ICMP IPv6-ICMP }`: names (any case, IPv6-ICMP too) or numbers. */
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
  // most flows cost a Set lookup, not a parse: dotted quads, and IPv6 in its canonical text
  // (RFC 5952, which inet_ntop prints too, except for a dotted-quad tail). Prefixes are matched
  // numerically.
  const exact = new Set<string>()
  let exact6 = false
  const v4: { net: number; mask: number }[] = []
  const v6: { net: number[]; mask: number[] }[] = []
  for (const a of filter.ignoreAddresses ?? []) {
    const [ip, len, ...extra] = a.split('/')
    const n4 = parseIPv4(ip!)
    const g6 = n4 < 0 && ip!.includes(':') ? parseIPv6Groups(ip!) : undefined
    const max = n4 >= 0 ? 32 : 128
    const prefix = len === undefined ? max : /^\d{1,3}$/.test(len) ? Number(len) : NaN
    if ((n4 < 0 && !g6) || extra.length || !(prefix >= 0 && prefix <= max))
      throw new HafwError(`conntrackd filter: Address Ignore: ${JSON.stringify(a)} is not an IPv4/IPv6 address or address/prefix`)
    if (n4 >= 0 && prefix === 32) exact.add(`${n4 >>> 24}.${(n4 >>> 16) & 255}.${(n4 >>> 8) & 255}.${n4 & 255}`)
    else if (n4 >= 0) {
      const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0
      v4.push({ net: (n4 & mask) >>> 0, mask })
    } else if (prefix === 128) {
      exact.add(formatIPv6(g6!))
      exact6 = true
    } else {
      const mask = groupMask(prefix)
      v6.push({ net: g6!.map((x, i) => x & mask[i]!), mask })
    }
  }
  const ignored = (addr: string | undefined): boolean => {
    if (!addr) return false
    if (exact.has(addr)) return true
    if (addr.includes(':')) {
      // not found as printed: only a prefix, or another spelling (a dotted tail), can still match
      if (!v6.length && !(exact6 && addr.includes('.'))) return false
      const g = parseIPv6Groups(addr)
      if (!g) return false
      if (exact6 && exact.has(formatIPv6(g))) return true
      return v6.some((e) => e.net.every((x, i) => (g[i]! & e.mask[i]!) === x))
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

/**
 * Dotted quad to an unsigned 32-bit number, -1 when it is not one. Hand-rolled for the
 * comparison's hot path (compare.ts keys IPv4 tuples by these numbers).
 */
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
