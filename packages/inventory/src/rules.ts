import type { RawInventory, RawPair, RawHost } from './schema.js'
import { inSubnet, parseCidr, sameSubnet, subnetOf, type Cidr } from './ip.js'

/*
 * Cross-field rules: what a schema cannot say about one field alone. Each returns issues with
 * the path of the offending field so the loader can point at its line and column.
 */

export type Path = (string | number)[]
export interface RuleIssue {
  path: Path
  message: string
}

const cidrOf = (s: string | null | undefined): Cidr | null => {
  if (typeof s !== 'string') return null
  const c = parseCidr(s)
  return typeof c === 'string' ? null : c
}

/** An own entry of a map: a logical name such as "constructor" must not find Object.prototype. */
const has = (rec: Record<string, string>, key: string): boolean => Object.hasOwn(rec, key)
const at = (rec: Record<string, string>, key: string): string | undefined => (Object.hasOwn(rec, key) ? rec[key] : undefined)

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
      out.push({ path: [...path, f], message: `${f} needs proto: tcp or udp, found ${r.proto ? `proto: ${r.proto}` : 'no proto'}` })
    }
  }
}

/** A node's or host's maps: every address has a device, and no device serves two logical names. */
function interfaceMaps(n: { interfaces: Record<string, string>; addresses: Record<string, string> }, base: Path, out: RuleIssue[]) {
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
  routes: { via: string; interface?: string }[] | undefined,
  nodes: { name: string; addresses: Record<string, string> }[],
  base: Path,
  out: RuleIssue[],
) {
  routes?.forEach((r, k) => {
    for (const n of nodes) {
      const nets = Object.entries(n.addresses)
        .filter(([name]) => r.interface === undefined || name === r.interface)
        .map(([, a]) => cidrOf(a))
        .filter((c): c is Cidr => c !== null)
      if (nets.length && !nets.some((c) => inSubnet(r.via, c))) {
        const where = r.interface ? `the subnet of "${r.interface}" (${nets.map(subnetOf).join(', ')})` : `any subnet of ${n.name} (${nets.map(subnetOf).join(', ')})`
        out.push({ path: [...base, 'routes', k, 'via'], message: `gateway ${r.via} is not inside ${where}` })
        return
      }
    }
  })
}

/** Rules within one pair. */
export function pairRules(p: RawPair, base: Path): RuleIssue[] {
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
      }
    })
  }

  // VRRP: VRID unique per segment within the pair; VIPs inside their interface's subnet.
  const byIface = new Map<string, number>()
  const nodeIps = new Set([...p.nodes.flatMap((n) => Object.values(n.addresses).map((s) => cidrOf(s)?.ip)), ...p.nodes.map((n) => n.address)])
  const instNames = new Set<string>()
  const pairVips = new Set<string>()
  p.vrrp.instances.forEach((inst, k) => {
    const ip: Path = [...base, 'vrrp', 'instances', k]
    if (instNames.has(inst.name)) out.push({ path: [...ip, 'name'], message: `instance name "${inst.name}" is used twice in this pair` })
    instNames.add(inst.name)
    const key = `${inst.interface}/${inst.vrid}`
    if (byIface.has(key)) out.push({ path: [...ip, 'vrid'], message: `VRID ${inst.vrid} is already used on interface "${inst.interface}" by instances[${byIface.get(key)}]; a VRID must be unique per segment` })
    else byIface.set(key, k)
    inst.vips.forEach((v, j) => {
      const c = cidrOf(v)
      if (!c) return
      pairVips.add(c.ip)
      const vp: Path = [...ip, 'vips', j]
      if (nodeIps.has(c.ip)) out.push({ path: vp, message: `VIP ${c.ip} equals a node address; a VIP must be an address of its own` })
      // One message per VIP: the peers' subnets are compared on their own below.
      for (const n of p.nodes) {
        const na = cidrOf(at(n.addresses, inst.interface))
        if (!na) continue
        if (!inSubnet(c.ip, na)) out.push({ path: vp, message: `VIP ${c.ip} is outside ${subnetOf(na)}, the subnet of "${inst.interface}" on node ${n.name}` })
        else if (na.prefix !== c.prefix && c.prefix !== 32) out.push({ path: vp, message: `VIP ${v} has prefix /${c.prefix} but "${inst.interface}" on node ${n.name} is /${na.prefix}` })
        else continue
        break
      }
    })
  })

  // Both nodes on one subnet for the sync link (and for every VRRP interface).
  const sameNet = (logical: string, path: Path, what: string) => {
    const ca = cidrOf(at(a.addresses, logical))
    const cb = cidrOf(at(b.addresses, logical))
    if (ca && cb && !sameSubnet(ca, cb)) out.push({ path, message: `${what}: ${a.name} has ${ca.cidr} and ${b.name} has ${cb.cidr}, not one subnet` })
  }
  if (p.conntrack_sync) sameNet(p.conntrack_sync.interface, [...base, 'conntrack_sync', 'interface'], 'sync addresses of both nodes must share a subnet')
  for (const [k, inst] of p.vrrp.instances.entries()) sameNet(inst.interface, [...base, 'vrrp', 'instances', k, 'interface'], 'VRRP peers must share a subnet')

  // Ports only with tcp/udp.
  p.nat?.dnat?.forEach((r, k) => portsNeedTcpUdp(r, [...base, 'nat', 'dnat', k], out))
  p.nat?.snat?.forEach((r, k) => portsNeedTcpUdp(r, [...base, 'nat', 'snat', k], out))
  p.filter?.allow?.forEach((r, k) => portsNeedTcpUdp(r, [...base, 'filter', 'allow', k], out))

  // NAT addresses move with the pair: the standby can only take over a translation to or from a VIP.
  const vipList = () => [...pairVips].join(', ')
  p.nat?.dnat?.forEach((r, k) => {
    if (!pairVips.has(r.dst)) out.push({ path: [...base, 'nat', 'dnat', k, 'dst'], message: `dnat dst ${r.dst} is not a VIP of this pair (VIPs: ${vipList()})` })
  })
  p.nat?.snat?.forEach((r, k) => {
    if (!pairVips.has(r.to)) out.push({ path: [...base, 'nat', 'snat', k, 'to'], message: `snat to ${r.to} is not a VIP of this pair (VIPs: ${vipList()})` })
  })

  routeGateways(p.routes, p.nodes, base, out)

  // Probe hosts sit on the segment they name.
  if (p.drill?.probes) {
    for (const role of ['client', 'server'] as const) {
      const probe = p.drill.probes[role]
      const na = cidrOf(at(a.addresses, probe.segment))
      if (na && !inSubnet(probe.address, na)) {
        out.push({ path: [...base, 'drill', 'probes', role, 'address'], message: `probe ${role} ${probe.address} is outside ${subnetOf(na)}, the subnet of segment "${probe.segment}"` })
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
    vs.vips.forEach((v, j) => {
      if (!pairVips.has(v.address)) out.push({ path: [...vsp, 'vips', j, 'address'], message: `${v.address} is not a VIP of this pair (VIPs: ${vipList()}); LVS serves only addresses the pair holds` })
      const svc = `${vs.protocol}/${v.address}:${v.port}`
      const prev = services.get(svc)
      if (prev) out.push({ path: [...vsp, 'vips', j], message: `${vs.protocol} ${v.address}:${v.port} is already served by ${prev}` })
      else services.set(svc, `virtual server "${vs.name}"`)
    })
    const reals = new Map<string, number>()
    vs.real_servers.forEach((rs, j) => {
      const rp: Path = [...vsp, 'real_servers', j]
      const id = `${rs.address}:${rs.port}`
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
    const c = cidrOf(at(h.addresses, r.interface))
    if (!has(h.interfaces, r.interface)) out.push({ path: [...rp, 'interface'], message: `interface "${r.interface}" is not mapped to a device (interfaces)` })
    else if (!c) out.push({ path: [...rp, 'interface'], message: `interface "${r.interface}" has no address (addresses)` })
    else if (!inSubnet(r.gateway, c)) out.push({ path: [...rp, 'gateway'], message: `gateway ${r.gateway} is outside ${subnetOf(c)}, the subnet of "${r.interface}"` })
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
  addresses: Record<string, string>
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
    const addresses = Object.fromEntries(Object.entries(obj(o.addresses)).filter(([, a]) => fields.cidr(a))) as Record<string, string>
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
      machines.push({ address: m.address, base, label })
      if (mgmt.has(m.address)) out.push({ path: [...base, 'address'], message: `address ${m.address} is already used by ${mgmt.get(m.address)}` })
      else mgmt.set(m.address, label)
    }
    for (const [name, s] of Object.entries(m.addresses)) {
      const c = cidrOf(s)
      if (!c) continue
      if (ips.has(c.ip)) out.push({ path: [...base, 'addresses', name], message: `address ${c.ip} is already used by ${ips.get(c.ip)}` })
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
      const na = cidrOf(p.nodes[0] && at(p.nodes[0].addresses, inst.interface))
      if (!na) return
      const seg = `${subnetOf(na)}#${inst.vrid}`
      const prev = vridOnSegment.get(seg)
      if (prev && !prev.startsWith(`pairs[${k}].`)) out.push({ path: [...ip, 'vrid'], message: `VRID ${inst.vrid} is already used on segment ${subnetOf(na)} by ${prev}` })
      else if (!prev) vridOnSegment.set(seg, `pairs[${k}].vrrp.instances[${j}]`)
    })
  })
  return out
}
