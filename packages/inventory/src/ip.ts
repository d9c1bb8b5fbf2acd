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
  const m = /^([^/]+)\/(\d{1,2})$/.exec(s)
  if (!m) return s.includes(':') ? 'IPv6 is not supported yet; expected IPv4 address/prefix' : 'expected IPv4 address/prefix such as 192.168.0.41/24'
  const ip = m[1]!
  const prefix = Number(m[2])
  if (!isIPv4(ip)) return `"${ip}" is not an IPv4 address`
  if (prefix > 32) return `prefix length ${prefix} is out of range 0..32`
  const ipNum = ipToNum(ip)
  const netNum = (ipNum & mask(prefix)) >>> 0
  const bcast = (netNum | (~mask(prefix) >>> 0)) >>> 0
  return { cidr: s, ip, prefix, network: numToIp(netNum), broadcast: numToIp(bcast), ipNum, netNum }
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
