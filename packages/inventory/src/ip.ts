/** IPv4 arithmetic for validation and rendering. IPv6 is not supported yet. */

export interface Cidr {
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
  if (s.includes(':')) return `IPv6 is not supported yet; expected an IPv4 address/prefix such as 192.168.0.41/24, found ${JSON.stringify(s)}`
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
  return { cidr: s, ip, prefix, network: numToIp(netNum), broadcast: numToIp(bcast), ipNum, netNum }
}

/** Why a string is not a plain IPv4 address, or null when it is one. */
export function ipv4Problem(s: string): string | null {
  if (isIPv4(s)) return null
  if (s.includes(':')) return `IPv6 is not supported yet; expected an IPv4 address such as 192.168.0.40, found ${JSON.stringify(s)}`
  if (s.includes('/') && isIPv4(s.split('/')[0]!)) return `expected an IPv4 address without a prefix length, found ${JSON.stringify(s)}`
  return `expected an IPv4 address such as 192.168.0.40, found ${JSON.stringify(s)}`
}

/** A host address must not be the network or broadcast address (except /31 and /32). */
export function hostAddressProblem(c: Cidr): string | null {
  if (c.prefix >= 31) return null
  if (c.ip === c.network) return `${c.cidr} is the network address of its subnet`
  if (c.ip === c.broadcast) return `${c.cidr} is the broadcast address of its subnet`
  return null
}

export function inSubnet(ip: string, subnet: Cidr): boolean {
  return ((ipToNum(ip) & mask(subnet.prefix)) >>> 0) === subnet.netNum
}

export function sameSubnet(a: Cidr, b: Cidr): boolean {
  return a.prefix === b.prefix && a.netNum === b.netNum
}

/** "192.168.0.0/24" for a subnet. */
export function subnetOf(c: Cidr): string {
  return `${c.network}/${c.prefix}`
}
