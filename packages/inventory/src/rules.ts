import type { RawInventory, RawPair, RawHost } from './schema.js'
import { canonicalAddr, familyOf, inSubnet, parseAnyCidr, sameSubnet, subnetOf, type AnyCidr, type Family } from './ip.js'
import { addressList } from './schema.js'

/*
 * Cross-field rules: what a schema cannot say about one field alone. Each returns issues with
 * the path of the offending field so the loader can point at its line and column.
 */

export type Path = (string | number)[]
export interface RuleIssue {
  path: Path
  message: string
}

const cidrOf = (s: string | null | undefined): AnyCidr | null => {
  if (typeof s !== 'string') return null
  const c = parseAnyCidr(s)
  return typeof c === 'string' ? null : c
}

/** A node's `addresses`: per logical interface one address/prefix or a list, one per family. */
type AddrMap = Record<string, string | string[]>

/** An own entry of a map: a logical name such as "constructor" must not find Object.prototype. */
const has = (rec: Record<string, unknown>, key: string): boolean => Object.hasOwn(rec, key)
const at = (rec: AddrMap, key: string): string[] => addressList(Object.hasOwn(rec, key) ? rec[key] : undefined)
/** The address of one family on a logical interface. */
const addrOf = (rec: AddrMap, key: string, fam: Family = 4): AnyCidr | null =>
  at(rec, key).map(cidrOf).find((c): c is AnyCidr => c?.family === fam) ?? null
/** Every address of a map, with its path below the node. */
const allAddrs = (rec: AddrMap): { name: string; c: AnyCidr; path: Path }[] =>
  Object.entries(rec).flatMap(([name, v]) =>
    addressList(v).flatMap((s, k) => {
      const c = cidrOf(s)
      return c ? [{ name, c, path: typeof v === 'string' ? ['addresses', name] : ['addresses', name, k] }] : []
    }),
  )
/** The canonical text of an address of either family, for comparisons. */
const key = canonicalAddr
const fam = familyOf
const v = (f: Family) => `IPv${f}`

/** Logical interfaces a pair's parts refer to, with where they are referred from. */
function interfaceRefs(p: RawPair, base: Path): { name: string; path: Path; needsAddress: boolean; needs6?: string }[] {
  const refs: { name: string; path: Path; needsAddress: boolean; needs6?: string }[] = []
  p.vrrp.instances.forEach((i, k) => {
    const six = i.vips[0] !== undefined && fam(i.vips[0]) === 6
    refs.push({ name: i.interface, path: [...base, 'vrrp', 'instances', k, 'interface'], needsAddress: true, ...(six ? { needs6: 'an IPv6 instance' } : {}) })
    i.track_interfaces?.forEach((t, j) => refs.push({ name: t, path: [...base, 'vrrp', 'instances', k, 'track_interfaces', j], needsAddress: false }))
  })
  if (p.conntrack_sync) {
    const six = p.conntrack_sync.family === 'ipv6' ? { needs6: 'sync over IPv6 (family: ipv6)' } : {}
    refs.push({ name: p.conntrack_sync.interface, path: [...base, 'conntrack_sync', 'interface'], needsAddress: true, ...six })
  }
  p.nat?.dnat?.forEach((r, k) => refs.push({ name: r.in, path: [...base, 'nat', 'dnat', k, 'in'], needsAddress: false }))
  p.nat?.snat?.forEach((r, k) => refs.push({ name: r.out, path: [...base, 'nat', 'snat', k, 'out'], needsAddress: false }))
  p.filter?.allow?.forEach((r, k) => {
    if (r.in) refs.push({ name: r.in, path: [...base, 'filter', 'allow', k, 'in'], needsAddress: false })
    if (r.out) refs.push({ name: r.out, path: [...base, 'filter', 'allow', k, 'out'], needsAddress: false })
  })
  p.routes?.forEach((r, k) => r.interface && refs.push({ name: r.interface, path: [...base, 'routes', k, 'interface'], needsAddress: false }))
  if (p.drill?.probes) {
    for (const role of ['client', 'server'] as const) {
      const probe = p.drill.probes[role]
      refs.push({ name: probe.segment, path: [...base, 'drill', 'probes', role, 'segment'], needsAddress: true, ...(probe.address6 ? { needs6: `an IPv6 probe ${role}` } : {}) })
    }
  }
  return refs
}

function portsNeedTcpUdp(r: { proto?: string; dport?: number; sport?: number; to_port?: number }, path: Path, out: RuleIssue[]) {
  for (const f of ['dport', 'sport', 'to_port'] as const) {
    if (r[f] !== undefined && r.proto !== 'tcp' && r.proto !== 'udp') {
      out.push({ path: [...path, f], message: `${f} needs proto: tcp or udp, found ${r.proto ? `proto: ${r.proto}` : 'no proto'}` })
    }
  }
}

/** A node's or host's maps: every address has a device, and no device serves two logical names. */
function interfaceMaps(n: { interfaces: Record<string, string>; addresses: AddrMap }, base: Path, out: RuleIssue[]) {
  for (const name of Object.keys(n.addresses)) {
    if (!has(n.interfaces, name)) out.push({ path: [...base, 'addresses', name], message: `address for "${name}" but interfaces has no "${name}"` })
  }
  const devices = new Map<string, string>()
  for (const [name, device] of Object.entries(n.interfaces)) {
    const prev = devices.get(device)
    if (prev) out.push({ path: [...base, 'interfaces', name], message: `device ${device} is already mapped to "${prev}"; each logical interface needs its own device` })
    else devices.set(device, name)
  }
}

/** Routes leave through a connected subnet: `via` must be inside one of the node's subnets. */
function routeGateways(
  routes: { to: string; via: string; interface?: string }[] | undefined,
  nodes: { name: string; addresses: AddrMap }[],
  base: Path,
  out: RuleIssue[],
) {
  routes?.forEach((r, k) => {
    const f = fam(r.via)
    if (fam(r.to) !== f) {
      out.push({ path: [...base, 'routes', k, 'via'], message: `gateway ${r.via} is ${v(f)} but the route to ${r.to} is ${v(fam(r.to))}; a route and its gateway are one family` })
      return
    }
    for (const n of nodes) {
      const nets = allAddrs(n.addresses)
        .filter((a) => a.c.family === f && (r.interface === undefined || a.name === r.interface))
        .map((a) => a.c)
      if (!nets.length && f === 6) {
        const where = r.interface ? `"${r.interface}"` : 'any interface'
        out.push({ path: [...base, 'routes', k, 'via'], message: `gateway ${r.via} is IPv6 but ${n.name} has no IPv6 address on ${where}` })
        return
      }
      if (nets.length && !nets.some((c) => inSubnet(r.via, c))) {
        const where = r.interface ? `the ${v(f)} subnet of "${r.interface}" (${nets.map(subnetOf).join(', ')})` : `any ${v(f)} subnet of ${n.name} (${nets.map(subnetOf).join(', ')})`
        out.push({ path: [...base, 'routes', k, 'via'], message: `gateway ${r.via} is not inside ${where}` })
        return
      }
    }
  })
}

/** Addresses of one rule that must share a family (a NAT66 rule is IPv6 end to end). */
function oneFamily(r: Record<string, unknown>, fields: readonly string[], path: Path, out: RuleIssue[]): Family | null {
  let first: { f: string; fam: Family } | null = null
  for (const f of fields) {
    const s = r[f]
    if (typeof s !== 'string') continue
    const x = fam(s)
    if (!first) first = { f, fam: x }
    else if (x !== first.fam) {
      out.push({ path: [...path, f], message: `${f} ${s} is ${v(x)} but ${first.f} ${String(r[first.f])} is ${v(first.fam)}; one rule is one family` })
      return null
    }
  }
  return first?.fam ?? null
}

/** Rules within one pair. */
export function pairRules(p: RawPair, base: Path, vrrpDefaults?: { auth?: unknown; version?: number }): RuleIssue[] {
  const out: RuleIssue[] = []
  const [a, b] = p.nodes
  if (!a || !b) return out
  if (a.priority === b.priority && !p.vrrp.nopreempt) {
    out.push({ path: [...base, 'nodes', 1, 'priority'], message: `both nodes have priority ${a.priority}; make them different or set vrrp.nopreempt: true` })
  }

  // Every node: every address key has a device, and no device is mapped twice.
  p.nodes.forEach((n, k) => interfaceMaps(n, [...base, 'nodes', k], out))

  // Every referenced logical interface is mapped on both nodes (and addressed where needed).
  for (const ref of interfaceRefs(p, base)) {
    p.nodes.forEach((n, k) => {
      if (!has(n.interfaces, ref.name)) {
        out.push({ path: ref.path, message: `interface "${ref.name}" is not mapped to a device on node ${n.name} (nodes[${k}].interfaces)` })
      } else if (ref.needsAddress && !has(n.addresses, ref.name)) {
        out.push({ path: ref.path, message: `interface "${ref.name}" has no address on node ${n.name} (nodes[${k}].addresses)` })
      } else if (ref.needs6 && !addrOf(n.addresses, ref.name, 6)) {
        out.push({ path: ref.path, message: `${ref.needs6} needs an IPv6 address on "${ref.name}", and node ${n.name} has none (nodes[${k}].addresses.${ref.name})` })
      }
    })
  }

  // VRRPv3 (RFC 5798) has no authentication, and IPv6 instances always run VRRPv3.
  const auth = p.vrrp.auth ?? vrrpDefaults?.auth
  if (auth) {
    const authPath: Path = p.vrrp.auth ? [...base, 'vrrp', 'auth'] : ['defaults', 'vrrp', 'auth']
    const six = p.vrrp.instances.findIndex((i) => i.vips[0] !== undefined && fam(i.vips[0]) === 6)
    if ((p.vrrp.version ?? vrrpDefaults?.version) === 3) out.push({ path: authPath, message: 'VRRP version 3 has no authentication; remove vrrp.auth or use version 2' })
    else if (six >= 0) out.push({ path: authPath, message: `instance ${p.vrrp.instances[six]!.name} of pair ${p.name} is IPv6, which runs VRRPv3, and VRRPv3 has no authentication; remove vrrp.auth` })
  }

  // VRRP: VRID unique per segment within the pair; VIPs inside their interface's subnet.
  const byIface = new Map<string, number>()
  const nodeIps = new Set([...p.nodes.flatMap((n) => allAddrs(n.addresses).map((a) => a.c.ip)), ...p.nodes.map((n) => key(n.address))])
  const instNames = new Set<string>()
  const pairVips = new Set<string>()
  p.vrrp.instances.forEach((inst, k) => {
    const ip: Path = [...base, 'vrrp', 'instances', k]
    if (instNames.has(inst.name)) out.push({ path: [...ip, 'name'], message: `instance name "${inst.name}" is used twice in this pair` })
    instNames.add(inst.name)
    const instFam = inst.vips[0] !== undefined ? fam(inst.vips[0]) : 4
    // IPv4 and IPv6 VRRP are separate protocols: one VRID may serve one instance of each.
    const vk = `${inst.interface}/${inst.vrid}/${instFam}`
    if (byIface.has(vk)) out.push({ path: [...ip, 'vrid'], message: `VRID ${inst.vrid} is already used on interface "${inst.interface}" by instances[${byIface.get(vk)}] (${v(instFam)}); a VRID must be unique per segment and family` })
    else byIface.set(vk, k)
    inst.vips.forEach((vip, j) => {
      const c = cidrOf(vip)
      if (!c) return
      pairVips.add(c.ip)
      const vp: Path = [...ip, 'vips', j]
      if (c.family !== instFam) {
        out.push({ path: vp, message: `VIP ${vip} is ${v(c.family)} but this instance's first VIP is ${v(instFam)}; an instance carries one family, so put the ${v(c.family)} VIPs in an instance of their own (IPv6 instances are rendered as native IPv6 VRRPv3)` })
        return
      }
      if (nodeIps.has(c.ip)) out.push({ path: vp, message: `VIP ${c.ip} equals a node address; a VIP must be an address of its own` })
      // One message per VIP: the peers' subnets are compared on their own below.
      for (const n of p.nodes) {
        const na = addrOf(n.addresses, inst.interface, c.family)
        if (!na) continue
        if (!inSubnet(c.ip, na)) out.push({ path: vp, message: `VIP ${c.ip} is outside ${subnetOf(na)}, the subnet of "${inst.interface}" on node ${n.name}` })
        else if (na.prefix !== c.prefix && c.prefix !== (c.family === 6 ? 128 : 32)) out.push({ path: vp, message: `VIP ${vip} has prefix /${c.prefix} but "${inst.interface}" on node ${n.name} is /${na.prefix}` })
        else continue
        break
      }
    })
  })

  // Both nodes on one subnet for the sync link (and for every VRRP interface).
  const sameNet = (logical: string, path: Path, what: string) => {
    for (const f of [4, 6] as const) {
      const ca = addrOf(a.addresses, logical, f)
      const cb = addrOf(b.addresses, logical, f)
      if (ca && cb && !sameSubnet(ca, cb)) out.push({ path, message: `${what}: ${a.name} has ${ca.cidr} and ${b.name} has ${cb.cidr}, not one subnet` })
    }
  }
  if (p.conntrack_sync) sameNet(p.conntrack_sync.interface, [...base, 'conntrack_sync', 'interface'], 'sync addresses of both nodes must share a subnet')
  for (const [k, inst] of p.vrrp.instances.entries()) sameNet(inst.interface, [...base, 'vrrp', 'instances', k, 'interface'], 'VRRP peers must share a subnet')

  // Ports only with tcp/udp.
  p.nat?.dnat?.forEach((r, k) => portsNeedTcpUdp(r, [...base, 'nat', 'dnat', k], out))
  p.nat?.snat?.forEach((r, k) => portsNeedTcpUdp(r, [...base, 'nat', 'snat', k], out))
  p.filter?.allow?.forEach((r, k) => portsNeedTcpUdp(r, [...base, 'filter', 'allow', k], out))

  // NAT addresses move with the pair: the standby can only take over a translation to or from a VIP.
  const vipList = () => [...pairVips].join(', ')
  p.nat?.dnat?.forEach((r, k) => oneFamily(r, ['dst', 'to'], [...base, 'nat', 'dnat', k], out))
  p.nat?.snat?.forEach((r, k) => oneFamily(r, ['src', 'dst', 'to'], [...base, 'nat', 'snat', k], out))
  p.filter?.allow?.forEach((r, k) => oneFamily(r, ['src', 'dst'], [...base, 'filter', 'allow', k], out))
  p.nat?.dnat?.forEach((r, k) => {
    if (!pairVips.has(key(r.dst))) out.push({ path: [...base, 'nat', 'dnat', k, 'dst'], message: `dnat dst ${r.dst} is not a VIP of this pair (VIPs: ${vipList()})` })
  })
  p.nat?.snat?.forEach((r, k) => {
    if (!pairVips.has(key(r.to))) out.push({ path: [...base, 'nat', 'snat', k, 'to'], message: `snat to ${r.to} is not a VIP of this pair (VIPs: ${vipList()})` })
  })

  routeGateways(p.routes, p.nodes, base, out)

  // Probe hosts sit on the segment they name.
  if (p.drill?.probes) {
    for (const role of ['client', 'server'] as const) {
      const probe = p.drill.probes[role]
      const na = addrOf(a.addresses, probe.segment, 4)
      if (na && !inSubnet(probe.address, na)) {
        out.push({ path: [...base, 'drill', 'probes', role, 'address'], message: `probe ${role} ${probe.address} is outside ${subnetOf(na)}, the subnet of segment "${probe.segment}"` })
      }
      const na6 = addrOf(a.addresses, probe.segment, 6)
      if (na6 && probe.address6 && !inSubnet(probe.address6, na6)) {
        out.push({ path: [...base, 'drill', 'probes', role, 'address6'], message: `probe ${role} ${probe.address6} is outside ${subnetOf(na6)}, the IPv6 subnet of segment "${probe.segment}"` })
      }
    }
  }

  // Load-balancer specifics.
  if (p.virtual_servers?.length && p.kind !== 'loadbalancer') {
    out.push({ path: [...base, 'virtual_servers'], message: 'virtual_servers are only for kind: loadbalancer' })
  }
  const vsNames = new Set<string>()
  const services = new Map<string, string>()
  p.virtual_servers?.forEach((vs, k) => {
    const vsp: Path = [...base, 'virtual_servers', k]
    if (vsNames.has(vs.name)) out.push({ path: [...vsp, 'name'], message: `virtual server name "${vs.name}" is used twice` })
    vsNames.add(vs.name)
    vs.vips.forEach((vv, j) => {
      if (!pairVips.has(key(vv.address))) out.push({ path: [...vsp, 'vips', j, 'address'], message: `${vv.address} is not a VIP of this pair (VIPs: ${vipList()}); LVS serves only addresses the pair holds` })
      const svc = `${vs.protocol}/${key(vv.address)}:${vv.port}`
      const prev = services.get(svc)
      if (prev) out.push({ path: [...vsp, 'vips', j], message: `${vs.protocol} ${vv.address}:${vv.port} is already served by ${prev}` })
      else services.set(svc, `virtual server "${vs.name}"`)
    })
    const reals = new Map<string, number>()
    vs.real_servers.forEach((rs, j) => {
      const rp: Path = [...vsp, 'real_servers', j]
      const vf = vs.vips[0] ? fam(vs.vips[0].address) : 4
      if (fam(rs.address) !== vf) out.push({ path: [...rp, 'address'], message: `real server ${rs.address} is ${v(fam(rs.address))} but the virtual server's VIPs are ${v(vf)}` })
      const id = `${key(rs.address)}:${rs.port}`
      if (reals.has(id)) out.push({ path: rp, message: `real server ${id} is already listed as real_servers[${reals.get(id)}]` })
      else reals.set(id, j)
      const c = rs.check
      const cp: Path = [...rp, 'check']
      if (!c) return
      if (c.type === 'http' && !c.url) out.push({ path: cp, message: 'an http check needs url: { path }' })
      if (c.type !== 'http' && c.url) out.push({ path: [...cp, 'url'], message: `url is only for http checks, found type: ${c.type}` })
      if (c.type === 'misc' && !c.misc_path) out.push({ path: cp, message: 'a misc check needs misc_path' })
      if (c.type !== 'misc' && c.misc_path) out.push({ path: [...cp, 'misc_path'], message: `misc_path is only for misc checks, found type: ${c.type}` })
    })
  })
  p.vrrp.instances.forEach((inst, k) => {
    if (inst.lvs_sync_daemon && p.kind !== 'loadbalancer') out.push({ path: [...base, 'vrrp', 'instances', k, 'lvs_sync_daemon'], message: 'lvs_sync_daemon is only for kind: loadbalancer' })
  })
  return out
}

export function hostRules(h: RawHost, base: Path): RuleIssue[] {
  const out: RuleIssue[] = []
  interfaceMaps(h, base, out)
  const tables = new Map<number, number>()
  const marks = new Map<string, number>()
  const tableNames = new Map<string, number>()
  h.pbr.forEach((r, k) => {
    const rp: Path = [...base, 'pbr', k]
    const c = addrOf(h.addresses, r.interface, 4)
    const c6 = addrOf(h.addresses, r.interface, 6)
    if (!has(h.interfaces, r.interface)) out.push({ path: [...rp, 'interface'], message: `interface "${r.interface}" is not mapped to a device (interfaces)` })
    else if (!c) out.push({ path: [...rp, 'interface'], message: `interface "${r.interface}" has no address (addresses)` })
    else if (!inSubnet(r.gateway, c)) out.push({ path: [...rp, 'gateway'], message: `gateway ${r.gateway} is outside ${subnetOf(c)}, the subnet of "${r.interface}"` })
    if (c && r.gateway6 && !c6) out.push({ path: [...rp, 'gateway6'], message: `gateway6 needs an IPv6 address on "${r.interface}" (addresses.${r.interface})` })
    else if (c6 && r.gateway6 && !inSubnet(r.gateway6, c6)) out.push({ path: [...rp, 'gateway6'], message: `gateway6 ${r.gateway6} is outside ${subnetOf(c6)}, the IPv6 subnet of "${r.interface}"` })
    if (Number(r.fwmark) === 0) out.push({ path: [...rp, 'fwmark'], message: 'fwmark 0x0 means "no mark"; use a non-zero mark' })
    const dup = (m: Map<string | number, number>, v: string | number, f: string) => {
      if (m.has(v)) out.push({ path: [...rp, f], message: `${f} ${v} is already used by pbr[${m.get(v)}]` })
      else m.set(v, k)
    }
    dup(tables as Map<string | number, number>, r.table, 'table')
    dup(marks as Map<string | number, number>, Number(r.fwmark), 'fwmark')
    dup(tableNames as Map<string | number, number>, r.table_name, 'table_name')
    if (['local', 'main', 'default', 'unspec'].includes(r.table_name)) out.push({ path: [...rp, 'table_name'], message: `table_name "${r.table_name}" is reserved by iproute2; choose another name` })
  })
  h.routes?.forEach((r, k) => r.interface && !has(h.interfaces, r.interface) && out.push({ path: [...base, 'routes', k, 'interface'], message: `interface "${r.interface}" is not mapped to a device (interfaces)` }))
  routeGateways(h.routes, [h], base, out)
  return out
}

/**
 * What the inventory-wide rules read of a pair or host. A pair that fails its schema still
 * yields the fields that are valid on their own (see looseView), so a typo in one place does not
 * hide a duplicate name or VRID elsewhere.
 */
export interface GlobalNode {
  name?: string
  address?: string
  addresses: AddrMap
}
export interface GlobalPair {
  name?: string
  nodes: GlobalNode[]
  vrrp: { instances: { interface?: string; vrid?: number; vips: (string | null)[] }[] }
}

/** The valid parts of an unvalidated pair (nodes present) or host (nodes absent). */
export function looseView(x: unknown, fields: { name: (v: unknown) => boolean; address: (v: unknown) => boolean; cidr: (v: unknown) => boolean; vrid: (v: unknown) => boolean }): (GlobalPair & GlobalNode) | null {
  const obj = (v: unknown): Record<string, unknown> => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {})
  const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : [])
  const pick = <T>(v: unknown, ok: (v: unknown) => boolean): T | undefined => (ok(v) ? (v as T) : undefined)
  const node = (n: unknown): GlobalNode => {
    const o = obj(n)
    const addresses = Object.fromEntries(Object.entries(obj(o.addresses)).filter(([, a]) => fields.cidr(a))) as AddrMap
    return { name: pick(o.name, fields.name), address: pick(o.address, fields.address), addresses }
  }
  if (x === null || typeof x !== 'object') return null
  const o = obj(x)
  const instances = list(obj(o.vrrp).instances).map((i) => {
    const io = obj(i)
    return {
      interface: pick<string>(io.interface, (v) => typeof v === 'string'),
      vrid: pick<number>(io.vrid, fields.vrid),
      vips: list(io.vips).map((v) => (fields.cidr(v) ? (v as string) : null)),
    }
  })
  return { ...node(o), nodes: list(o.nodes).map(node), vrrp: { instances } }
}

/** Rules across the inventory: unique names and addresses, VRIDs per segment across pairs. */
export function globalRules(_raw: Partial<RawInventory>, pairs: (GlobalPair | null)[], hosts: (GlobalNode | null)[]): RuleIssue[] {
  const out: RuleIssue[] = []
  const names = new Map<string, string>()
  const claim = (name: string | undefined, path: Path, what: string) => {
    if (name === undefined) return
    const prev = names.get(name)
    if (prev && /^pairs\[\d+\]\.nodes/.test(what) && prev.startsWith(what.replace(/\[\d+\]$/, ''))) {
      out.push({ path, message: `both nodes are named "${name}"; a pair's nodes need distinct names` })
    } else if (prev) out.push({ path, message: `name "${name}" is already used by ${prev}; pair, node and host names must be unique across the inventory` })
    else names.set(name, what)
  }
  pairs.forEach((p, k) => {
    if (!p) return
    claim(p.name, ['pairs', k, 'name'], `pairs[${k}]`)
    p.nodes.forEach((n, j) => claim(n.name, ['pairs', k, 'nodes', j, 'name'], `pairs[${k}].nodes[${j}]`))
  })
  hosts.forEach((h, k) => h && claim(h.name, ['hosts', k, 'name'], `hosts[${k}]`))

  // Node management addresses and interface addresses are unique.
  const mgmt = new Map<string, string>()
  const ips = new Map<string, string>()
  const machines: { address: string; base: Path; label: string }[] = []
  const each = (m: GlobalNode, base: Path, label: string) => {
    if (m.address !== undefined) {
      const addr = key(m.address)
      machines.push({ address: addr, base, label })
      if (mgmt.has(addr)) out.push({ path: [...base, 'address'], message: `address ${m.address} is already used by ${mgmt.get(addr)}` })
      else mgmt.set(addr, label)
    }
    for (const { name, c, path } of allAddrs(m.addresses)) {
      if (ips.has(c.ip)) out.push({ path: [...base, ...path], message: `address ${c.ip} is already used by ${ips.get(c.ip)}` })
      else ips.set(c.ip, `${label}.addresses.${name}`)
    }
  }
  pairs.forEach((p, k) => p?.nodes.forEach((n, j) => each(n, ['pairs', k, 'nodes', j], `pairs[${k}].nodes[${j}]`)))
  hosts.forEach((h, k) => h && each(h, ['hosts', k], `hosts[${k}]`))
  // SSH to a node must not land on another machine's interface.
  for (const m of machines) {
    const owner = ips.get(m.address)
    if (mgmt.get(m.address) !== m.label) continue // a duplicate, reported above
    if (owner && !owner.startsWith(`${m.label}.`)) out.push({ path: [...m.base, 'address'], message: `address ${m.address} is an interface address of ${owner}` })
  }

  // VIPs are not node addresses anywhere, and each VIP belongs to one pair.
  const vips = new Map<string, string>()
  // VRID unique per L2 segment across pairs: the segment is the subnet of the instance's interface.
  const vridOnSegment = new Map<string, string>()
  pairs.forEach((p, k) => {
    p?.vrrp.instances.forEach((inst, j) => {
      const ip: Path = ['pairs', k, 'vrrp', 'instances', j]
      inst.vips.forEach((v, m) => {
        const c = cidrOf(v ?? undefined)
        if (!c) return
        const owner = ips.get(c.ip) ?? mgmt.get(c.ip)
        if (owner && !owner.startsWith(`pairs[${k}].`)) out.push({ path: [...ip, 'vips', m], message: `VIP ${c.ip} equals the address of ${owner}` })
        const prev = vips.get(c.ip)
        if (prev) out.push({ path: [...ip, 'vips', m], message: `VIP ${c.ip} is already declared at ${prev}` })
        else vips.set(c.ip, `pairs[${k}].vrrp.instances[${j}].vips[${m}]`)
      })
      if (inst.interface === undefined || inst.vrid === undefined) return
      const first = inst.vips.find((x): x is string => typeof x === 'string')
      const na = p.nodes[0] ? addrOf(p.nodes[0].addresses, inst.interface, first ? fam(first) : 4) : null
      if (!na) return
      const seg = `${subnetOf(na)}#${inst.vrid}`
      const prev = vridOnSegment.get(seg)
      if (prev && !prev.startsWith(`pairs[${k}].`)) out.push({ path: [...ip, 'vrid'], message: `VRID ${inst.vrid} is already used on segment ${subnetOf(na)} by ${prev}` })
      else if (!prev) vridOnSegment.set(seg, `pairs[${k}].vrrp.instances[${j}]`)
    })
  })
  return out
}
