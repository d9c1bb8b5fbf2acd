import { HafwError } from '@hafw/core'
import { formatIPv6, inSubnet, ipToNum, numToIp, parseCidr, parseIPv6Groups, type Cidr, type Cidr6, type Iface, type Model, type PairModel } from '@hafw/inventory'

/*
 * What a lab for an inventory consists of, decided without touching the machine: segments
 * (one bridge per subnet), one container per node and host, management addresses, and the
 * probe hosts. `lab up` only executes this plan.
 *
 * Dual stack: a segment is keyed by its IPv4 subnet, and the IPv6 subnet of its interfaces shares
 * that segment (bridge): the inventory gives every IPv6 address an IPv4 one. Probe hosts get an IPv6 address (drill.probes.*.address6, else one picked like the
 * IPv4 one) and an IPv6 default route via the pair's IPv6 VIP on every segment that has IPv6.
 * Management stays IPv4 (198.18.0.0/15).
 */

/** Management addresses: 198.18.0.0/15, the range reserved for network test labs; one /24 per site. */
export const MGMT_BASE = '198.18.0.0'
export const MGMT_PREFIX = 15
const MGMT_FIRST_HOST = 10
const MAX_MGMT_INDEX = 511

export interface SegmentPlan {
  /** the IPv4 subnet ("192.168.10.0/24"), or "link:<pair or host>:<interface>" for an unaddressed link */
  id: string
  /** bridge in the lab namespace */
  bridge: string
  /** the IPv6 subnets on this link ("fd00:10::/64"), when any */
  subnets6?: string[]
}

export interface HostIfacePlan {
  logical: string
  device: string
  /** "192.168.10.11/24" */
  address?: string
  /** "fd00:10::11/64" (canonical text) */
  address6?: string
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
  /** "fd00:10::100/64" on a segment with IPv6 */
  address6?: string
  /** IPv6 default route: an IPv6 VIP of the pair on this segment */
  gateway6?: string
  /** "fd00:10::/64" */
  subnet6?: string
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

const key = (c: Cidr | Cidr6) => `${c.network}/${c.prefix}`

/**
 * An IPv6 address for a probe in subnet c that nothing else uses: the probe's IPv4 host number
 * written as the last group when it fits ("192.168.10.254" -> "fd00:10::254"), else the highest
 * free one. Never the subnet-router anycast address (host bits zero).
 */
export function probeIPv6(c: Cidr6, ipv4: string, free: (ip: string) => boolean): string | undefined {
  const hostBits = 128 - c.prefix
  if (hostBits < 2) return undefined
  // only the last group is picked: 65534 candidates are plenty for a lab segment
  const span = hostBits >= 16 ? 0x10000 : 1 << hostBits
  const net = parseIPv6Groups(c.network)!
  const mirrored = parseInt(ipv4.split('.').pop()!, 16)
  const candidates = [...(mirrored > 0 && mirrored < span ? [mirrored] : [])]
  for (let n = span - 2; n > 0 && candidates.length < 4096; n--) candidates.push(n)
  for (const n of candidates) {
    const ip = formatIPv6([...net.slice(0, 7), net[7]! | n])
    if (free(ip)) return ip
  }
  return undefined
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

  // Every node and host of the inventory.
  const hostsIn: { name: string; pair?: PairModel; interfaces: Record<string, Iface> }[] = [
    ...model.pairs.flatMap((pair) => pair.nodes.map((n) => ({ name: n.name, pair, interfaces: n.interfaces }))),
    ...model.hosts.map((h) => ({ name: h.name, interfaces: h.interfaces })),
  ]
  if (hostsIn.length > 253 - MGMT_FIRST_HOST) throw fail(model, `${hostsIn.length} hosts; a lab holds at most ${253 - MGMT_FIRST_HOST}`)
  // Every subnet the inventory's interfaces use; one bridge each. IPv4 subnets key the
  // segments; an IPv6 subnet joins the segment of the IPv4 subnet it shares interfaces with.
  const subnets = new Map<string, Cidr>()
  for (const h of hostsIn) for (const i of Object.values(h.interfaces)) if (i.address) subnets.set(key(i.address), i.address)
  /** IPv6 subnet -> its prefix and the segment it is on */
  const subnets6 = new Map<string, { c: Cidr6; segment: string }>()
  const where6 = new Map<string, string>()
  for (const h of hostsIn) {
    for (const i of Object.values(h.interfaces)) {
      if (!i.address6 || !i.address) continue
      const k6 = key(i.address6)
      const seg = key(i.address)
      const had = subnets6.get(k6)
      if (had && had.segment !== seg) {
        throw fail(model, `IPv6 subnet ${k6} is on the IPv4 subnets ${had.segment} (${where6.get(k6)}) and ${seg} (${h.name} ${i.name}); the lab makes one segment per subnet, so an IPv6 subnet must share its link with one IPv4 subnet`)
      }
      if (!had) {
        subnets6.set(k6, { c: i.address6, segment: seg })
        where6.set(k6, `${h.name} ${i.name}`)
      }
    }
  }
  const nets = [...subnets.entries()]
  for (const [id, c] of nets) {
    if (inSubnet(c.ip, mgmtRange) || inSubnet(mgmtRange.ip, c)) throw fail(model, `subnet ${id} overlaps ${MGMT_BASE}/${MGMT_PREFIX}, which the lab uses for management`)
    for (const [id2, c2] of nets) {
      if (id < id2 && (inSubnet(c.network, c2) || inSubnet(c2.network, c))) throw fail(model, `subnets ${id} and ${id2} overlap; the lab makes one segment per subnet`)
    }
  }
  const nets6 = [...subnets6.entries()]
  for (const [id, { c }] of nets6) {
    for (const [id2, { c: c2 }] of nets6) {
      if (id < id2 && (inSubnet(c.network, c2) || inSubnet(c2.network, c))) throw fail(model, `IPv6 subnets ${id} and ${id2} overlap; the lab makes one segment per subnet`)
    }
  }
  /** The segment an address of either family is on. */
  const segmentOf = (ip: string): string | undefined =>
    ip.includes(':') ? nets6.find(([, s]) => inSubnet(ip, s.c))?.[1].segment : nets.find(([, c]) => inSubnet(ip, c))?.[0]
  /** The segment an interface is on, when it has an address. */
  const segmentOfIface = (i: Iface): string | undefined => (i.address ? key(i.address) : undefined)

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
        ...(i.address6 ? { address6: `${i.address6.ip}/${i.address6.prefix}` } : {}),
        // An unaddressed interface still links the two nodes of a pair (e.g. a sync link).
        segment: segment(segmentOfIface(i) ?? `link:${h.pair?.name ?? h.name}:${i.name}`),
        port: `n${k}i${j}`,
      })),
    }
  })
  for (const [k6, s6] of subnets6) {
    const seg = segments.get(s6.segment)
    if (seg) seg.subnets6 = [...(seg.subnets6 ?? []), k6]
  }

  // Addresses the inventory gives a meaning to: probes must not take them (IPv6 in canonical text).
  const taken = new Set<string>()
  const vipsOf = (p: PairModel) => p.vrrp.instances.flatMap((i) => i.vips.map((v) => v.ip))
  const ifaceIps = (i: Iface) => [...(i.address ? [i.address.ip] : []), ...(i.address6 ? [i.address6.ip] : [])]
  for (const h of hostsIn) for (const i of Object.values(h.interfaces)) ifaceIps(i).forEach((a) => taken.add(a))
  for (const p of model.pairs) {
    vipsOf(p).forEach((v) => taken.add(v))
    for (const r of p.routes) taken.add(r.via)
    for (const r of p.nat.dnat) taken.add(r.dst).add(r.to)
    for (const r of p.nat.snat) taken.add(r.to)
    for (const vs of p.virtual_servers) {
      vs.vips.forEach((v) => taken.add(v.address))
      vs.real_servers.forEach((rs) => taken.add(rs.address))
    }
    const pc = p.drill.probes
    if (pc) {
      taken.add(pc.client.address).add(pc.server.address)
      if (pc.client.address6) taken.add(pc.client.address6)
      if (pc.server.address6) taken.add(pc.server.address6)
    }
  }
  for (const h of model.hosts) for (const r of h.pbr) (r.gateway6 ? taken.add(r.gateway).add(r.gateway6) : taken.add(r.gateway))
  const labHostIps = new Set([...hostsIn.flatMap((h) => Object.values(h.interfaces).flatMap(ifaceIps)), ...model.pairs.flatMap(vipsOf)])
  // drill.probes that name both addresses: an IPv6 DNAT target is the probe of the IPv4 one.
  const probe4Of6 = new Map<string, string>()
  for (const p of model.pairs) for (const c of p.drill.probes ? [p.drill.probes.client, p.drill.probes.server] : []) if (c.address6) probe4Of6.set(c.address6, c.address)
  /** IPv4 addresses of probes drill.probes gives an IPv6 address: they get that one */
  const probe4Of6Values = new Set(probe4Of6.values())

  /** The pair's logical interface on a segment, and its first VIP of each family there. */
  const pairOn = (p: PairModel, seg: string) => {
    const iface = Object.values(p.nodes[0].interfaces).find((i) => segmentOfIface(i) === seg)
    if (!iface) return undefined
    const vips = p.vrrp.instances.filter((i) => i.interface === iface.name).flatMap((i) => i.vips)
    return { logical: iface.name, vip: vips.find((v) => v.family === 4)?.ip, vip6: vips.find((v) => v.family === 6)?.ip, subnet6: iface.address6 ? key(iface.address6) : undefined }
  }
  const subnetOfLogical = (p: PairModel, logical: string) => {
    const i = p.nodes[0].interfaces[logical]
    return i ? segmentOfIface(i) : undefined
  }

  const probes: ProbePlan[] = []
  const used = new Set<string>()
  /** probe name -> the IPv6 address it must have (drill.probes.*.address6, an IPv6 DNAT target) */
  const want6 = new Map<string, string>()
  /** probe name -> the pair it was made for */
  const ownerOf = new Map<string, PairModel>()
  const addProbe = (role: 'client' | 'server', ip: string, subnet: string, owner: PairModel, ports: number[], what: string, ip6?: string) => {
    const existing = probes.find((x) => x.address.split('/')[0] === ip)
    if (existing) {
      if (existing.role !== role) throw fail(model, `${ip} would be both a probe client and a probe server`)
      existing.ports = [...new Set([...existing.ports, ...ports])].sort((a, b) => a - b)
      if (ip6 && !want6.has(existing.name)) want6.set(existing.name, ip6)
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
    ownerOf.set(name, owner)
    if (ip6) want6.set(name, ip6)
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
    const ports = port === undefined ? [] : [port]
    if (!ip.includes(':')) return addProbe('server', ip, subnet, p, ports, what)
    // IPv6: the probe that drill.probes gives this address, else one that has it already, else
    // a probe of its own (with a free IPv4 address too: every probe has one).
    const v4 = probe4Of6.get(ip)
    if (v4 && segmentOf(v4) === subnet) return addProbe('server', v4, subnet, p, ports, what, ip)
    const has = probes.find((x) => want6.get(x.name) === ip)
    if (has) return addProbe('server', has.address.split('/')[0]!, has.subnet, p, ports, what, ip)
    // a server probe of this pair on the segment without an IPv6 address of its own yet (the
    // IPv4 target of the same service, typically): one probe host answers both
    const peer = probes.find((x) => x.role === 'server' && x.subnet === subnet && ownerOf.get(x.name) === p && !want6.has(x.name) && !probe4Of6Values.has(x.address.split('/')[0]!))
    if (peer) return addProbe('server', peer.address.split('/')[0]!, subnet, p, ports, what, ip)
    const v4free = freeIp(subnet)
    if (!v4free) return void warnings.push(`${what}: no free IPv4 address on ${subnet} for the probe server of ${ip}`)
    addProbe('server', v4free, subnet, p, ports, what, ip)
  }

  for (const p of model.pairs) {
    const probeCfg = p.drill.probes
    p.nat.dnat.forEach((r, k) => server(p, r.to, r.to_port ?? r.dport, `${p.name}.nat.dnat[${k}]`))
    p.virtual_servers.forEach((vs) => vs.real_servers.forEach((rs) => server(p, rs.address, rs.port, `${p.name}.virtual_servers.${vs.name}`)))
    if (probeCfg) {
      const s = probeCfg.server
      const sub = subnetOfLogical(p, s.segment)
      if (!sub || !inSubnet(s.address, subnets.get(sub)!)) throw fail(model, `pair ${p.name}: drill.probes.server ${s.address} is not in the subnet of interface "${s.segment}"`)
      // (a lab host, node or VIP, answers there already)
      if (!labHostIps.has(s.address)) addProbe('server', s.address, sub, p, [s.port], `${p.name}.drill.probes.server`, s.address6)
    }
    // Clients: the configured one, else one per segment where traffic enters the pair.
    if (probeCfg) {
      const c = probeCfg.client
      const sub = subnetOfLogical(p, c.segment)
      if (!sub || !inSubnet(c.address, subnets.get(sub)!)) throw fail(model, `pair ${p.name}: drill.probes.client ${c.address} is not in the subnet of interface "${c.segment}"`)
      addProbe('client', c.address, sub, p, [], `${p.name}.drill.probes.client`, c.address6)
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

  // IPv6 for every probe on a segment with IPv6: its own pair's IPv6 subnet there (else the
  // segment's first), the address drill.probes (or an IPv6 DNAT target) gives it or one picked
  // like the IPv4 one, and a default route via the IPv6 VIP of the pair it sits in front of.
  const used6 = new Set<string>(want6.values())
  for (const pr of probes) {
    const owner = ownerOf.get(pr.name)!
    const seg = segments.get(pr.subnet)
    const wanted = want6.get(pr.name)
    const k6 = (wanted && seg?.subnets6?.find((k) => inSubnet(wanted, subnets6.get(k)!.c))) ?? pairOn(owner, pr.subnet)?.subnet6 ?? seg?.subnets6?.[0]
    if (!k6) {
      if (wanted) warnings.push(`probe ${pr.name}: ${wanted} is on no IPv6 subnet of ${pr.subnet}; the probe gets no IPv6 address`)
      continue
    }
    const c6 = subnets6.get(k6)!.c
    const ip6 = wanted ?? probeIPv6(c6, pr.address.split('/')[0]!, (a) => !taken.has(a) && !used6.has(a))
    if (!ip6) {
      warnings.push(`probe ${pr.name}: no free IPv6 address on ${k6}`)
      continue
    }
    used6.add(ip6)
    const gw = [model.pairs.find((p) => p.name === pr.pair)!, owner, ...model.pairs].map((p) => pairOn(p, pr.subnet)?.vip6).find((v) => v && inSubnet(v, c6))
    if (!gw) warnings.push(`probe ${pr.name}: no IPv6 VIP on ${k6}, so ${ip6} gets no IPv6 default route`)
    Object.assign(pr, { address6: `${ip6}/${c6.prefix}`, subnet6: k6, ...(gw ? { gateway6: gw } : {}) })
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

/*
 * How `lab up` configures the namespaces of a plan: `ip -batch` lines and sysctls, pure so the
 * plan's addresses can be checked without a machine.
 */

/**
 * IPv6 on, and usable at once, in a host's or probe's namespace, set before its devices exist
 * (a device takes "default" when it is made or moved in): no duplicate address detection, so
 * addresses, the link-local ones keepalived's IPv6 VRRP sends from included, are never
 * "tentative" for a second or two after a link comes up. The kernel uses the larger of
 * all/<device> accept_dad, hence both.
 */
export const IPV6_NS_SYSCTLS = [
  'net.ipv6.conf.all.disable_ipv6=0',
  'net.ipv6.conf.default.disable_ipv6=0',
  'net.ipv6.conf.all.accept_dad=0',
  'net.ipv6.conf.default.accept_dad=0',
]

/** A lab host's addresses (`ip -batch` in its namespace); IPv6 ones "nodad", as a second guard. */
export function hostIpLines(h: HostPlan): string[] {
  return [
    'link set lo up',
    `addr add ${h.mgmt.address} dev ${h.mgmt.device}`,
    `link set ${h.mgmt.device} up`,
    ...h.interfaces.flatMap((i) => [
      ...(i.address ? [`addr add ${i.address} dev ${i.device}`] : []),
      ...(i.address6 ? [`addr add ${i.address6} dev ${i.device} nodad`] : []),
      `link set ${i.device} up`,
    ]),
  ]
}

/**
 * A lab host's sysctls once its addresses are up: it forwards, as the rendered sysctls make it
 * (IPv6 too when it has IPv6 addresses), so paths work before the first apply; the management
 * interface never forwards (set after ip_forward, which resets it) and has no IPv6 at all, not
 * even link-local: management is IPv4.
 */
export function hostSysctls(h: HostPlan, ipv6: boolean): string[] {
  const six = ipv6 && h.interfaces.some((i) => i.address6)
  return [
    'net.ipv4.ip_forward=1',
    `net.ipv4.conf.${h.mgmt.device}.forwarding=0`,
    ...(six ? ['net.ipv6.conf.all.forwarding=1'] : []),
    ...(ipv6 ? [`net.ipv6.conf.${h.mgmt.device}.disable_ipv6=1`] : []),
  ]
}

/** A probe's addresses and default routes (`ip -batch` in its namespace). */
export function probeIpLines(p: ProbePlan): string[] {
  return [
    'link set lo up',
    `addr add ${p.address} dev ${p.device}`,
    ...(p.address6 ? [`addr add ${p.address6} dev ${p.device} nodad`] : []),
    `link set ${p.device} up`,
    ...(p.gateway ? [`route add default via ${p.gateway}`] : []),
    // "::/0", not "default": the family comes from the prefix, whatever the batch's options
    ...(p.address6 && p.gateway6 ? [`route add ::/0 via ${p.gateway6} dev ${p.device}`] : []),
  ]
}
