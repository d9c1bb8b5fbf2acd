import { HafwError } from '@hafw/core'
import { inSubnet, ipToNum, numToIp, parseCidr, type Cidr, type Iface, type Model, type PairModel } from '@hafw/inventory'

/*
 * What a lab for an inventory consists of, decided without touching the machine: segments
 * (one bridge per subnet), one container per node and host, management addresses, and the
 * probe hosts. `lab up` only executes this plan.
 */

/** Management addresses: 198.18.0.0/15, the range reserved for network test labs; one /24 per site. */
export const MGMT_BASE = '198.18.0.0'
export const MGMT_PREFIX = 15
const MGMT_FIRST_HOST = 10
const MAX_MGMT_INDEX = 511

export interface SegmentPlan {
  /** the subnet ("192.168.10.0/24"), or "link:<pair or host>:<interface>" for an unaddressed link */
  id: string
  /** bridge in the lab namespace */
  bridge: string
}

export interface HostIfacePlan {
  logical: string
  device: string
  /** "192.168.10.11/24" */
  address?: string
  segment: string
  /** the veth end on the segment's bridge, in the lab namespace */
  port: string
}

export interface HostPlan {
  name: string
  /** the pair a node belongs to; absent for `hosts:` entries */
  pair?: string
  netns: string
  mgmt: { device: string; address: string; port: string }
  interfaces: HostIfacePlan[]
}

export interface ProbePlan {
  name: string
  role: 'client' | 'server'
  netns: string
  /** "192.168.10.100/24" */
  address: string
  /** default route: a VIP of the pair on this segment, so traffic crosses the pair */
  gateway?: string
  /** the pair and logical interface this probe sits in front of */
  pair: string
  segment: string
  subnet: string
  /** TCP and UDP ports the echo responder listens on */
  ports: number[]
  device: string
  port: string
}

export interface LabPlan {
  site: string
  labNetns: string
  mgmtIndex: number
  /** "198.18.0.0/24" */
  mgmtSubnet: string
  /** root-namespace end of the management link and its address */
  rootPort: string
  rootAddress: string
  segments: SegmentPlan[]
  hosts: HostPlan[]
  probes: ProbePlan[]
  warnings: string[]
}

/** The echo port every probe answers on, besides the ports of its DNAT/real-server rules. */
export const ECHO_PORT = 7

const fail = (model: Model, msg: string) => new HafwError(`${model.source}: the lab cannot realise this inventory: ${msg}`)

export function mgmtSubnet(index: number): { subnet: string; gateway: string; host: (k: number) => string } {
  const base = ipToNum(MGMT_BASE) + index * 256
  return { subnet: `${numToIp(base)}/24`, gateway: numToIp(base + 1), host: (k) => numToIp(base + MGMT_FIRST_HOST + k) }
}

export function siteNetns(site: string): string {
  return `hafw-${site}`
}

function cidrOf(s: string): Cidr {
  const c = parseCidr(s)
  if (typeof c === 'string') throw new HafwError(`internal: bad address ${s}`)
  return c
}

export function planLab(model: Model, mgmtIndex: number): LabPlan {
  if (mgmtIndex < 0 || mgmtIndex > MAX_MGMT_INDEX) throw new HafwError(`no free management /24 left in ${MGMT_BASE}/${MGMT_PREFIX}`)
  const site = model.site
  const labNetns = siteNetns(site)
  const mgmt = mgmtSubnet(mgmtIndex)
  const mgmtRange = cidrOf(`${MGMT_BASE}/${MGMT_PREFIX}`)
  const warnings: string[] = []

  // Every subnet the inventory's interfaces use; one bridge each.
  const hostsIn: { name: string; pair?: PairModel; interfaces: Record<string, Iface> }[] = [
    ...model.pairs.flatMap((pair) => pair.nodes.map((n) => ({ name: n.name, pair, interfaces: n.interfaces }))),
    ...model.hosts.map((h) => ({ name: h.name, interfaces: h.interfaces })),
  ]
  if (hostsIn.length > 253 - MGMT_FIRST_HOST) throw fail(model, `${hostsIn.length} hosts; a lab holds at most ${253 - MGMT_FIRST_HOST}`)
  const subnets = new Map<string, Cidr>()
  for (const h of hostsIn) for (const i of Object.values(h.interfaces)) if (i.address) subnets.set(`${i.address.network}/${i.address.prefix}`, i.address)
  const nets = [...subnets.entries()]
  for (const [id, c] of nets) {
    if (inSubnet(c.ip, mgmtRange) || inSubnet(mgmtRange.ip, c)) throw fail(model, `subnet ${id} overlaps ${MGMT_BASE}/${MGMT_PREFIX}, which the lab uses for management`)
    for (const [id2, c2] of nets) {
      if (id < id2 && (inSubnet(c.network, c2) || inSubnet(c2.network, c))) throw fail(model, `subnets ${id} and ${id2} overlap; the lab makes one segment per subnet`)
    }
  }
  const segmentOf = (ip: string): string | undefined => nets.find(([, c]) => inSubnet(ip, c))?.[0]

  const segments = new Map<string, SegmentPlan>()
  const segment = (id: string) => {
    let s = segments.get(id)
    if (!s) segments.set(id, (s = { id, bridge: `br${segments.size}` }))
    return s.id
  }

  const hosts: HostPlan[] = hostsIn.map((h, k) => {
    const devices = new Set(Object.values(h.interfaces).map((i) => i.device))
    const mgmtDevice = ['mgmt0', 'labmgmt0', 'hafwmgmt0'].find((d) => !devices.has(d))!
    return {
      name: h.name,
      ...(h.pair ? { pair: h.pair.name } : {}),
      netns: `hafw-${site}-${h.name}`,
      mgmt: { device: mgmtDevice, address: `${mgmt.host(k)}/24`, port: `n${k}m` },
      interfaces: Object.values(h.interfaces).map((i, j) => ({
        logical: i.name,
        device: i.device,
        ...(i.address ? { address: i.address.cidr } : {}),
        // An unaddressed interface still links the two nodes of a pair (e.g. a sync link).
        segment: segment(i.address ? `${i.address.network}/${i.address.prefix}` : `link:${h.pair?.name ?? h.name}:${i.name}`),
        port: `n${k}i${j}`,
      })),
    }
  })

  // Addresses the inventory gives a meaning to: probes must not take them.
  const taken = new Set<string>()
  const vipsOf = (p: PairModel) => p.vrrp.instances.flatMap((i) => i.vips.map((v) => v.ip))
  for (const h of hostsIn) for (const i of Object.values(h.interfaces)) if (i.address) taken.add(i.address.ip)
  for (const p of model.pairs) {
    vipsOf(p).forEach((v) => taken.add(v))
    for (const r of p.routes) taken.add(r.via)
    for (const r of p.nat.dnat) taken.add(r.dst).add(r.to)
    for (const r of p.nat.snat) taken.add(r.to)
    for (const vs of p.virtual_servers) {
      vs.vips.forEach((v) => taken.add(v.address))
      vs.real_servers.forEach((rs) => taken.add(rs.address))
    }
    if (p.drill.probes) taken.add(p.drill.probes.client.address).add(p.drill.probes.server.address)
  }
  for (const h of model.hosts) for (const r of h.pbr) taken.add(r.gateway)
  const labHostIps = new Set([...hostsIn.flatMap((h) => Object.values(h.interfaces).flatMap((i) => (i.address ? [i.address.ip] : []))), ...model.pairs.flatMap(vipsOf)])

  /** The pair's logical interface on a subnet, and its first VIP there. */
  const pairOn = (p: PairModel, subnet: string) => {
    const iface = Object.values(p.nodes[0].interfaces).find((i) => i.address && `${i.address.network}/${i.address.prefix}` === subnet)
    if (!iface) return undefined
    const vip = p.vrrp.instances.filter((i) => i.interface === iface.name).flatMap((i) => i.vips)[0]?.ip
    return { logical: iface.name, vip }
  }
  const subnetOfLogical = (p: PairModel, logical: string) => {
    const a = p.nodes[0].interfaces[logical]?.address
    return a ? `${a.network}/${a.prefix}` : undefined
  }

  const probes: ProbePlan[] = []
  const used = new Set<string>()
  const addProbe = (role: 'client' | 'server', ip: string, subnet: string, owner: PairModel, ports: number[], what: string) => {
    const existing = probes.find((x) => x.address.split('/')[0] === ip)
    if (existing) {
      if (existing.role !== role) throw fail(model, `${ip} would be both a probe client and a probe server`)
      existing.ports = [...new Set([...existing.ports, ...ports])].sort((a, b) => a - b)
      return
    }
    // The owning pair's VIP on the segment; else another pair's (a server behind another router).
    const own = pairOn(owner, subnet)
    const other = own?.vip ? undefined : model.pairs.map((p) => ({ p, on: pairOn(p, subnet) })).find((x) => x.on?.vip)
    const gateway = own?.vip ?? other?.on?.vip
    const logical = own?.logical ?? other?.on?.logical ?? 'segment'
    if (!gateway) warnings.push(`${what}: no VIP on ${subnet}, so probe ${ip} gets no default route`)
    const name = role === 'client' ? `client-${owner.name}-${logical}` : `server-${ip}`
    const prefix = subnets.get(subnet)!.prefix
    probes.push({
      name,
      role,
      netns: `hafw-${site}-${name}`,
      address: `${ip}/${prefix}`,
      ...(gateway ? { gateway } : {}),
      pair: own || !other ? owner.name : other.p.name,
      segment: logical,
      subnet,
      ports: [...new Set([ECHO_PORT, ...ports])].sort((a, b) => a - b),
      device: 'eth0',
      port: `p${probes.length}`,
    })
    used.add(ip)
  }
  const freeIp = (subnet: string): string | undefined => {
    const c = subnets.get(subnet)!
    if (c.prefix >= 30) return undefined
    const bcast = ipToNum(c.broadcast)
    for (let n = bcast - 1; n > c.netNum; n--) {
      const ip = numToIp(n)
      if (!taken.has(ip) && !used.has(ip)) return ip
    }
    return undefined
  }
  const server = (p: PairModel, ip: string, port: number | undefined, what: string) => {
    if (labHostIps.has(ip)) return // a lab host (node or VIP) answers there already
    const subnet = segmentOf(ip)
    if (!subnet) return void warnings.push(`${what}: ${ip} is on no lab segment (no node has an address in its subnet); no probe server for it`)
    addProbe('server', ip, subnet, p, port === undefined ? [] : [port], what)
  }

  for (const p of model.pairs) {
    const probeCfg = p.drill.probes
    p.nat.dnat.forEach((r, k) => server(p, r.to, r.to_port ?? r.dport, `${p.name}.nat.dnat[${k}]`))
    p.virtual_servers.forEach((vs) => vs.real_servers.forEach((rs) => server(p, rs.address, rs.port, `${p.name}.virtual_servers.${vs.name}`)))
    if (probeCfg) {
      const s = probeCfg.server
      const sub = subnetOfLogical(p, s.segment)
      if (!sub || !inSubnet(s.address, subnets.get(sub)!)) throw fail(model, `pair ${p.name}: drill.probes.server ${s.address} is not in the subnet of interface "${s.segment}"`)
      server(p, s.address, s.port, `${p.name}.drill.probes.server`)
    }
    // Clients: the configured one, else one per segment where traffic enters the pair.
    if (probeCfg) {
      const c = probeCfg.client
      const sub = subnetOfLogical(p, c.segment)
      if (!sub || !inSubnet(c.address, subnets.get(sub)!)) throw fail(model, `pair ${p.name}: drill.probes.client ${c.address} is not in the subnet of interface "${c.segment}"`)
      addProbe('client', c.address, sub, p, [], `${p.name}.drill.probes.client`)
      continue
    }
    const entry = new Set<string>()
    for (const r of p.nat.dnat) { const s = subnetOfLogical(p, r.in); if (s) entry.add(s) }
    for (const vs of p.virtual_servers) for (const v of vs.vips) { const s = segmentOf(v.address); if (s && pairOn(p, s)) entry.add(s) }
    for (const sub of entry) {
      const ip = freeIp(sub)
      if (!ip) warnings.push(`${p.name}: no free address on ${sub} for a probe client`)
      else addProbe('client', ip, sub, p, [], `${p.name} client`)
    }
  }

  const names = new Set<string>([labNetns])
  for (const n of [...hosts.map((h) => h.netns), ...probes.map((p) => p.netns)]) {
    if (names.has(n)) throw fail(model, `two lab hosts would share the network namespace ${n}; rename one`)
    names.add(n)
  }

  return {
    site,
    labNetns,
    mgmtIndex,
    mgmtSubnet: mgmt.subnet,
    rootPort: `hafw${mgmtIndex}`,
    rootAddress: `${mgmt.gateway}/24`,
    segments: [...segments.values()],
    hosts,
    probes,
    warnings,
  }
}
