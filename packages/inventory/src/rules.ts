import type { RawInventory, RawPair, RawHost } from './schema.js'
import { hostAddressProblem, inSubnet, parseCidr, sameSubnet, subnetOf, type Cidr } from './ip.js'

/*
 * Cross-field rules: what a schema cannot say about one field alone. Each returns issues with
 * the path of the offending field so the loader can point at its line and column.
 */

export type Path = (string | number)[]
export interface RuleIssue {
  path: Path
  message: string
}

const cidrOf = (s: string | undefined): Cidr | null => {
  if (s === undefined) return null
  const c = parseCidr(s)
  return typeof c === 'string' ? null : c
}

/** Logical interfaces a pair's parts refer to, with where they are referred from. */
function interfaceRefs(p: RawPair, base: Path): { name: string; path: Path; needsAddress: boolean }[] {
  const refs: { name: string; path: Path; needsAddress: boolean }[] = []
  p.vrrp.instances.forEach((i, k) => {
    refs.push({ name: i.interface, path: [...base, 'vrrp', 'instances', k, 'interface'], needsAddress: true })
    i.track_interfaces?.forEach((t, j) => refs.push({ name: t, path: [...base, 'vrrp', 'instances', k, 'track_interfaces', j], needsAddress: false }))
  })
  if (p.conntrack_sync) refs.push({ name: p.conntrack_sync.interface, path: [...base, 'conntrack_sync', 'interface'], needsAddress: true })
  p.nat?.dnat?.forEach((r, k) => refs.push({ name: r.in, path: [...base, 'nat', 'dnat', k, 'in'], needsAddress: false }))
  p.nat?.snat?.forEach((r, k) => refs.push({ name: r.out, path: [...base, 'nat', 'snat', k, 'out'], needsAddress: false }))
  p.filter?.allow?.forEach((r, k) => {
    if (r.in) refs.push({ name: r.in, path: [...base, 'filter', 'allow', k, 'in'], needsAddress: false })
    if (r.out) refs.push({ name: r.out, path: [...base, 'filter', 'allow', k, 'out'], needsAddress: false })
  })
  p.routes?.forEach((r, k) => r.interface && refs.push({ name: r.interface, path: [...base, 'routes', k, 'interface'], needsAddress: false }))
  if (p.drill?.probes) {
    refs.push({ name: p.drill.probes.client.segment, path: [...base, 'drill', 'probes', 'client', 'segment'], needsAddress: true })
    refs.push({ name: p.drill.probes.server.segment, path: [...base, 'drill', 'probes', 'server', 'segment'], needsAddress: true })
  }
  return refs
}

function portsNeedTcpUdp(r: { proto?: string; dport?: number; sport?: number; to_port?: number }, path: Path, out: RuleIssue[]) {
  for (const f of ['dport', 'sport', 'to_port'] as const) {
    if (r[f] !== undefined && r.proto !== 'tcp' && r.proto !== 'udp') {
      out.push({ path: [...path, f], message: `${f} needs proto tcp or udp${r.proto ? ` (got ${r.proto})` : ''}` })
    }
  }
}

/** Rules within one pair. */
export function pairRules(p: RawPair, base: Path): RuleIssue[] {
  const out: RuleIssue[] = []
  const [a, b] = p.nodes
  if (!a || !b) return out
  if (a.name === b.name) out.push({ path: [...base, 'nodes', 1, 'name'], message: `both nodes are named "${a.name}"; a pair's nodes need distinct names` })
  if (a.priority === b.priority && !p.vrrp.nopreempt) {
    out.push({ path: [...base, 'nodes', 1, 'priority'], message: `both nodes have priority ${a.priority}; make them different or set vrrp.nopreempt: true` })
  }

  // Every node: addresses well-formed as host addresses, and every address key has a device.
  p.nodes.forEach((n, k) => {
    for (const [name, s] of Object.entries(n.addresses)) {
      const c = cidrOf(s)
      const np: Path = [...base, 'nodes', k, 'addresses', name]
      if (!c) continue
      const prob = hostAddressProblem(c)
      if (prob) out.push({ path: np, message: prob })
      if (!(name in n.interfaces)) out.push({ path: np, message: `address for "${name}" but interfaces has no "${name}"` })
    }
  })

  // Every referenced logical interface is mapped on both nodes (and addressed where needed).
  for (const ref of interfaceRefs(p, base)) {
    p.nodes.forEach((n, k) => {
      if (!(ref.name in n.interfaces)) {
        out.push({ path: ref.path, message: `interface "${ref.name}" is not mapped to a device on node ${n.name} (nodes[${k}].interfaces)` })
      } else if (ref.needsAddress && !(ref.name in n.addresses)) {
        out.push({ path: ref.path, message: `interface "${ref.name}" has no address on node ${n.name} (nodes[${k}].addresses)` })
      }
    })
  }

  // VRRP: VRID unique per segment within the pair; VIPs inside their interface's subnet.
  const byIface = new Map<string, number>()
  const nodeIps = new Set(p.nodes.flatMap((n) => Object.values(n.addresses).map((s) => cidrOf(s)?.ip)).filter(Boolean))
  const instNames = new Set<string>()
  p.vrrp.instances.forEach((inst, k) => {
    const ip: Path = [...base, 'vrrp', 'instances', k]
    if (instNames.has(inst.name)) out.push({ path: [...ip, 'name'], message: `instance name "${inst.name}" is used twice in this pair` })
    instNames.add(inst.name)
    const key = `${inst.interface}/${inst.vrid}`
    if (byIface.has(key)) out.push({ path: [...ip, 'vrid'], message: `VRID ${inst.vrid} is already used on interface "${inst.interface}" by instances[${byIface.get(key)}]` })
    else byIface.set(key, k)
    inst.vips.forEach((v, j) => {
      const c = cidrOf(v)
      if (!c) return
      const vp: Path = [...ip, 'vips', j]
      const hp = hostAddressProblem(c)
      if (hp) out.push({ path: vp, message: hp })
      if (nodeIps.has(c.ip)) out.push({ path: vp, message: `VIP ${c.ip} equals a node address` })
      for (const n of p.nodes) {
        const na = cidrOf(n.addresses[inst.interface])
        if (na && !inSubnet(c.ip, na)) out.push({ path: vp, message: `VIP ${c.ip} is outside ${subnetOf(na)}, the subnet of "${inst.interface}" on node ${n.name}` })
        else if (na && na.prefix !== c.prefix) out.push({ path: vp, message: `VIP ${v} has prefix /${c.prefix} but "${inst.interface}" on node ${n.name} is /${na.prefix}` })
      }
    })
  })

  // Both nodes on one subnet for the sync link (and for every VRRP interface).
  const sameNet = (logical: string, path: Path, what: string) => {
    const ca = cidrOf(a.addresses[logical])
    const cb = cidrOf(b.addresses[logical])
    if (ca && cb && !sameSubnet(ca, cb)) out.push({ path, message: `${what}: ${a.name} has ${ca.cidr} and ${b.name} has ${cb.cidr}, not one subnet` })
  }
  if (p.conntrack_sync) sameNet(p.conntrack_sync.interface, [...base, 'conntrack_sync', 'interface'], 'sync addresses of both nodes must share a subnet')
  for (const [k, inst] of p.vrrp.instances.entries()) sameNet(inst.interface, [...base, 'vrrp', 'instances', k, 'interface'], 'VRRP peers must share a subnet')

  // Ports only with tcp/udp.
  p.nat?.dnat?.forEach((r, k) => portsNeedTcpUdp(r, [...base, 'nat', 'dnat', k], out))
  p.nat?.snat?.forEach((r, k) => portsNeedTcpUdp(r, [...base, 'nat', 'snat', k], out))
  p.filter?.allow?.forEach((r, k) => portsNeedTcpUdp(r, [...base, 'filter', 'allow', k], out))

  // Load-balancer specifics.
  if (p.virtual_servers?.length && p.kind !== 'loadbalancer') {
    out.push({ path: [...base, 'virtual_servers'], message: 'virtual_servers are only for kind: loadbalancer' })
  }
  const vsNames = new Set<string>()
  p.virtual_servers?.forEach((vs, k) => {
    if (vsNames.has(vs.name)) out.push({ path: [...base, 'virtual_servers', k, 'name'], message: `virtual server name "${vs.name}" is used twice` })
    vsNames.add(vs.name)
    vs.real_servers.forEach((rs, j) => {
      const c = rs.check
      const cp: Path = [...base, 'virtual_servers', k, 'real_servers', j, 'check']
      if (!c) return
      if (c.type === 'http' && !c.url) out.push({ path: cp, message: 'an http check needs url: { path }' })
      if (c.type !== 'http' && c.url) out.push({ path: [...cp, 'url'], message: `url is only for http checks (type is ${c.type})` })
      if (c.type === 'misc' && !c.misc_path) out.push({ path: cp, message: 'a misc check needs misc_path' })
      if (c.type !== 'misc' && c.misc_path) out.push({ path: [...cp, 'misc_path'], message: `misc_path is only for misc checks (type is ${c.type})` })
    })
  })
  p.vrrp.instances.forEach((inst, k) => {
    if (inst.lvs_sync_daemon && p.kind !== 'loadbalancer') out.push({ path: [...base, 'vrrp', 'instances', k, 'lvs_sync_daemon'], message: 'lvs_sync_daemon is only for kind: loadbalancer' })
  })
  return out
}

export function hostRules(h: RawHost, base: Path): RuleIssue[] {
  const out: RuleIssue[] = []
  for (const [name, s] of Object.entries(h.addresses)) {
    const c = cidrOf(s)
    const prob = c && hostAddressProblem(c)
    if (prob) out.push({ path: [...base, 'addresses', name], message: prob })
    if (!(name in h.interfaces)) out.push({ path: [...base, 'addresses', name], message: `address for "${name}" but interfaces has no "${name}"` })
  }
  const tables = new Map<number, number>()
  const marks = new Map<string, number>()
  const tableNames = new Map<string, number>()
  h.pbr.forEach((r, k) => {
    const rp: Path = [...base, 'pbr', k]
    if (!(r.interface in h.interfaces)) out.push({ path: [...rp, 'interface'], message: `interface "${r.interface}" is not mapped to a device (interfaces)` })
    const c = cidrOf(h.addresses[r.interface])
    if (!c) out.push({ path: [...rp, 'interface'], message: `interface "${r.interface}" has no address (addresses)` })
    else if (!inSubnet(r.gateway, c)) out.push({ path: [...rp, 'gateway'], message: `gateway ${r.gateway} is outside ${subnetOf(c)}, the subnet of "${r.interface}"` })
    if (Number(r.fwmark) === 0) out.push({ path: [...rp, 'fwmark'], message: 'fwmark 0x0 means "no mark"; use a non-zero mark' })
    const dup = (m: Map<string | number, number>, v: string | number, f: string) => {
      if (m.has(v)) out.push({ path: [...rp, f], message: `${f} ${v} is already used by pbr[${m.get(v)}]` })
      else m.set(v, k)
    }
    dup(tables as Map<string | number, number>, r.table, 'table')
    dup(marks as Map<string | number, number>, Number(r.fwmark), 'fwmark')
    dup(tableNames as Map<string | number, number>, r.table_name, 'table_name')
    if (['local', 'main', 'default', 'unspec'].includes(r.table_name)) out.push({ path: [...rp, 'table_name'], message: `table_name "${r.table_name}" is reserved` })
  })
  h.routes?.forEach((r, k) => r.interface && !(r.interface in h.interfaces) && out.push({ path: [...base, 'routes', k, 'interface'], message: `interface "${r.interface}" is not mapped to a device (interfaces)` }))
  return out
}

/** Rules across the inventory: unique names and addresses, VRIDs per segment across pairs. */
export function globalRules(raw: Partial<RawInventory>, pairs: (RawPair | null)[], hosts: (RawHost | null)[]): RuleIssue[] {
  const out: RuleIssue[] = []
  const names = new Map<string, string>()
  const claim = (name: string, path: Path, what: string) => {
    const prev = names.get(name)
    if (prev) out.push({ path, message: `name "${name}" is already used by ${prev}; names must be unique across the inventory` })
    else names.set(name, what)
  }
  const pairNames = new Map<string, number>()
  pairs.forEach((p, k) => {
    if (!p) return
    if (pairNames.has(p.name)) out.push({ path: ['pairs', k, 'name'], message: `pair name "${p.name}" is already used by pairs[${pairNames.get(p.name)}]` })
    else pairNames.set(p.name, k)
    p.nodes.forEach((n, j) => claim(n.name, ['pairs', k, 'nodes', j, 'name'], `pairs[${k}].nodes[${j}]`))
  })
  hosts.forEach((h, k) => h && claim(h.name, ['hosts', k, 'name'], `hosts[${k}]`))

  // Node management addresses and interface addresses are unique.
  const mgmt = new Map<string, string>()
  const ips = new Map<string, string>()
  const each = (address: string, addresses: Record<string, string>, base: Path, label: string) => {
    if (mgmt.has(address)) out.push({ path: [...base, 'address'], message: `address ${address} is already used by ${mgmt.get(address)}` })
    else mgmt.set(address, label)
    for (const [name, s] of Object.entries(addresses)) {
      const c = cidrOf(s)
      if (!c) continue
      if (ips.has(c.ip)) out.push({ path: [...base, 'addresses', name], message: `address ${c.ip} is already used by ${ips.get(c.ip)}` })
      else ips.set(c.ip, `${label}.addresses.${name}`)
    }
  }
  pairs.forEach((p, k) => p?.nodes.forEach((n, j) => each(n.address, n.addresses, ['pairs', k, 'nodes', j], `pairs[${k}].nodes[${j}]`)))
  hosts.forEach((h, k) => h && each(h.address, h.addresses, ['hosts', k], `hosts[${k}]`))

  // VIPs are not node addresses anywhere, and each VIP belongs to one pair.
  const vips = new Map<string, string>()
  // VRID unique per L2 segment across pairs: the segment is the subnet of the instance's interface.
  const vridOnSegment = new Map<string, string>()
  pairs.forEach((p, k) => {
    p?.vrrp.instances.forEach((inst, j) => {
      const ip: Path = ['pairs', k, 'vrrp', 'instances', j]
      inst.vips.forEach((v, m) => {
        const c = cidrOf(v)
        if (!c) return
        const owner = ips.get(c.ip)
        if (owner && !owner.startsWith(`pairs[${k}].`)) out.push({ path: [...ip, 'vips', m], message: `VIP ${c.ip} equals the address of ${owner}` })
        const prev = vips.get(c.ip)
        if (prev) out.push({ path: [...ip, 'vips', m], message: `VIP ${c.ip} is already declared at ${prev}` })
        else vips.set(c.ip, `pairs[${k}].vrrp.instances[${j}].vips[${m}]`)
      })
      const na = cidrOf(p.nodes[0]?.addresses[inst.interface])
      if (!na) return
      const seg = `${subnetOf(na)}#${inst.vrid}`
      const prev = vridOnSegment.get(seg)
      if (prev && !prev.startsWith(`pairs[${k}].`)) out.push({ path: [...ip, 'vrid'], message: `VRID ${inst.vrid} is already used on segment ${subnetOf(na)} by ${prev}` })
      else if (!prev) vridOnSegment.set(seg, `pairs[${k}].vrrp.instances[${j}]`)
    })
  })
  return out
}
