/** IPv4 and IPv6 arithmetic for validation and rendering. */

export type Family = 4 | 6

export interface Cidr {
  family: 4
  /** "192.168.0.41/24" as written */
  cidr: string
  ip: string
  prefix: number
  network: string
  broadcast: string
  /** numeric forms for comparisons */
  ipNum: number
  netNum: number
}

const OCTET = '(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)'
const IPV4 = new RegExp(`^${OCTET}(\\.${OCTET}){3}$`)

export function isIPv4(s: string): boolean {
  return IPV4.test(s)
}

export function ipToNum(ip: string): number {
  return ip.split('.').reduce((acc, o) => acc * 256 + Number(o), 0)
}

export function numToIp(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.')
}

function mask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0
}

/** Parse "a.b.c.d/len"; returns a reason string when invalid. */
export function parseCidr(s: string): Cidr | string {
  if (s.includes(':')) return `expected an IPv4 address/prefix such as 192.168.0.41/24, found the IPv6 ${JSON.stringify(s)}`
  if (isIPv4(s)) return `"${s}" has no prefix length; expected address/prefix such as ${s}/24`
  const m = /^([^/]+)\/(\d{1,3})$/.exec(s)
  if (!m) return `expected IPv4 address/prefix such as 192.168.0.41/24, found ${JSON.stringify(s)}`
  const ip = m[1]!
  const prefix = Number(m[2])
  if (!isIPv4(ip)) return `${JSON.stringify(ip)} is not an IPv4 address (four numbers 0..255 separated by ".")`
  if (prefix > 32) return `prefix length ${prefix} is out of range 0..32`
  const ipNum = ipToNum(ip)
  const netNum = (ipNum & mask(prefix)) >>> 0
  const bcast = (netNum | (~mask(prefix) >>> 0)) >>> 0
  return { family: 4, cidr: s, ip, prefix, network: numToIp(netNum), broadcast: numToIp(bcast), ipNum, netNum }
}

/** Why a string is not a plain IPv4 address, or null when it is one. */
export function ipv4Problem(s: string): string | null {
  if (isIPv4(s)) return null
  if (s.includes(':')) return `expected an IPv4 address such as 192.168.0.40, found the IPv6 ${JSON.stringify(s)}`
  if (s.includes('/') && isIPv4(s.split('/')[0]!)) return `expected an IPv4 address without a prefix length, found ${JSON.stringify(s)}`
  return `expected an IPv4 address such as 192.168.0.40, found ${JSON.stringify(s)}`
}

/** A host address must not be the network or broadcast address (except /31 and /32). */
export function hostAddressProblem(c: AnyCidr): string | null {
  if (c.family === 6) return host6Problem(c)
  if (c.prefix >= 31) return null
  if (c.ip === c.network) return `${c.cidr} is the network address of its subnet`
  if (c.ip === c.broadcast) return `${c.cidr} is the broadcast address of its subnet`
  return null
}

/** Whether an address (either family) lies in a subnet; an address of the other family never does. */
export function inSubnet(ip: string, subnet: AnyCidr): boolean {
  if (subnet.family === 6) {
    const g = parseIPv6Groups(ip)
    return !!g && formatIPv6(maskGroups(g, subnet.prefix)) === subnet.network
  }
  return isIPv4(ip) && ((ipToNum(ip) & mask(subnet.prefix)) >>> 0) === subnet.netNum
}

export function sameSubnet(a: AnyCidr, b: AnyCidr): boolean {
  return a.family === b.family && a.prefix === b.prefix && a.network === b.network
}

/** "192.168.0.0/24" for a subnet. */
export function subnetOf(c: AnyCidr): string {
  return `${c.network}/${c.prefix}`
}

/* ---- IPv6 ---- */

export interface Cidr6 {
  family: 6
  /** as written */
  cidr: string
  /** canonical text (RFC 5952: lower case, longest zero run as "::"), as conntrack and ip print it */
  ip: string
  prefix: number
  /** canonical text of the subnet's first address */
  network: string
}

export type AnyCidr = Cidr | Cidr6

/** IPv6 text (with "::" and an optional dotted IPv4 tail) to eight 16-bit groups; undefined when invalid. */
export function parseIPv6Groups(s: string): number[] | undefined {
  const halves = s.split('::')
  if (halves.length > 2) return undefined
  const groups = (part: string, last: boolean): number[] | undefined => {
    if (part === '') return []
    const out: number[] = []
    const items = part.split(':')
    for (let k = 0; k < items.length; k++) {
      const g = items[k]!
      if (last && k === items.length - 1 && g.includes('.')) {
        if (!isIPv4(g)) return undefined
        const n = ipToNum(g)
        out.push(Math.floor(n / 65536), n % 65536)
      } else if (/^[0-9a-fA-F]{1,4}$/.test(g)) out.push(parseInt(g, 16))
      else return undefined
    }
    return out
  }
  const head = groups(halves[0]!, halves.length === 1)
  const tail = halves.length === 2 ? groups(halves[1]!, true) : []
  if (!head || !tail) return undefined
  const fill = 8 - head.length - tail.length
  if (halves.length === 2 ? fill < 1 : fill !== 0) return undefined
  return [...head, ...new Array<number>(fill).fill(0), ...tail]
}

/** RFC 5952 text of eight groups: what inet_ntop (ip, conntrack, keepalived) prints. */
export function formatIPv6(g: number[]): string {
  let best = -1
  let bestLen = 1
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) { i++; continue }
    let j = i
    while (j < 8 && g[j] === 0) j++
    if (j - i > bestLen) { best = i; bestLen = j - i }
    i = j
  }
  const hex = (a: number[]) => a.map((x) => x.toString(16)).join(':')
  return best < 0 ? hex(g) : `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`
}

/** Per 16-bit group, the bits of an IPv6 prefix. */
export function groupMask(prefix: number): number[] {
  return Array.from({ length: 8 }, (_, i) => {
    const bits = Math.max(0, Math.min(16, prefix - 16 * i))
    return bits === 0 ? 0 : (0xffff << (16 - bits)) & 0xffff
  })
}

function maskGroups(g: number[], prefix: number): number[] {
  const m = groupMask(prefix)
  return g.map((x, i) => x & m[i]!)
}

export function isIPv6(s: string): boolean {
  return !s.includes('%') && !!parseIPv6Groups(s)
}

/** Canonical text of an IPv6 address, the input itself when it is not one. */
export function canonicalIPv6(s: string): string {
  const g = parseIPv6Groups(s)
  return g ? formatIPv6(g) : s
}

/** Why a string is not a plain IPv6 address usable in an inventory, or null when it is one. */
export function ipv6Problem(s: string): string | null {
  const zone = s.indexOf('%')
  if (zone >= 0) {
    return `a zone index (${JSON.stringify(s.slice(zone))}) is not allowed: inventory addresses are global or unique-local, and the interface is named separately; found ${JSON.stringify(s)}`
  }
  const g = parseIPv6Groups(s)
  if (!g) return `expected an IPv6 address such as 2001:db8::40 (eight groups of 1-4 hex digits, "::" at most once), found ${JSON.stringify(s)}`
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) {
    return `${JSON.stringify(s)} is an IPv4-mapped IPv6 address; write the IPv4 address ${numToIp(g[6]! * 65536 + g[7]!)} instead`
  }
  return null
}

/** IPv6 text in its canonical form (as conntrack and ip print it), with a "/len" kept; IPv4 as written. */
export function canonicalAddr(s: string): string
export function canonicalAddr(s: string | undefined): string | undefined
export function canonicalAddr(s: string | undefined): string | undefined {
  if (s === undefined || !s.includes(':')) return s
  const slash = s.indexOf('/')
  if (slash < 0) return canonicalIPv6(s)
  const c = parseCidr6(s)
  return typeof c === 'string' ? s : `${c.ip}/${c.prefix}`
}

/** Parse "2001:db8::41/64"; returns a reason string when invalid. */
export function parseCidr6(s: string): Cidr6 | string {
  const slash = s.lastIndexOf('/')
  const ip = slash < 0 ? s : s.slice(0, slash)
  const why = ipv6Problem(ip)
  if (why) return why
  if (slash < 0) return `"${s}" has no prefix length; expected address/prefix such as ${canonicalIPv6(s)}/64`
  const p = s.slice(slash + 1)
  if (!/^\d{1,3}$/.test(p)) return `expected an IPv6 prefix length 0..128 after "/", found ${JSON.stringify(p)}`
  const prefix = Number(p)
  if (prefix > 128) return `prefix length ${prefix} is out of range 0..128 for IPv6`
  const g = parseIPv6Groups(ip)!
  return { family: 6, cidr: s, ip: formatIPv6(g), prefix, network: formatIPv6(maskGroups(g, prefix)) }
}

/** Either family: IPv6 when the text has a ":". */
export function parseAnyCidr(s: string): AnyCidr | string {
  return s.includes(':') || s.includes('%') ? parseCidr6(s) : parseCidr(s)
}

export function familyOf(ip: string): Family {
  return ip.includes(':') ? 6 : 4
}

/** Why an address of either family is not a plain one, or null. */
export function ipProblem(s: string): string | null {
  return s.includes(':') || s.includes('%') ? ipv6Problem(s) : ipv4Problem(s)
}

/** An address a host holds: not unspecified, loopback, multicast, link-local or the subnet-router anycast. */
function host6Problem(c: Cidr6): string | null {
  const g = parseIPv6Groups(c.ip)!
  if (g.every((x) => x === 0)) return `${c.cidr} is the unspecified address`
  if (c.ip === '::1') return `${c.cidr} is the loopback address`
  if (g[0]! >= 0xff00) return `${c.cidr} is a multicast address`
  if ((g[0]! & 0xffc0) === 0xfe80) return `${c.cidr} is link-local; the kernel assigns those itself (keepalived's IPv6 VRRP sends from them); use a global or unique-local (fd00::/8) address`
  if (c.prefix < 127 && c.ip === c.network) return `${c.cidr} is the subnet-router anycast address of its subnet (host bits all zero)`
  return null
}
