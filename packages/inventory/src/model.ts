import type { RawHost, RawInventory, RawNode, RawPair, RawSsh } from './schema.js'
import { addressList } from './schema.js'
import { canonicalAddr, familyOf, inSubnet, parseAnyCidr, type AnyCidr, type Cidr, type Cidr6, type Family } from './ip.js'

/*
 * The typed model every later stage reads: the inventory with defaults merged into every pair,
 * node and host. Field names follow the inventory (snake_case) so templates, docs and the
 * inventory speak one language. Built only from an inventory that passed validation.
 */

export type Profile = 'debian' | 'rhel'
export type Proto = 'tcp' | 'udp' | 'icmp'

export interface SshTarget {
  host: string
  user: string
  port: number
  identity: string
  known_hosts: string
  host_key?: string
  jump?: string
  sudo: boolean
  connect_timeout: number
}

export interface Iface {
  /** logical name from the inventory, e.g. "outside" */
  name: string
  /** Linux device, e.g. "enp0s3" */
  device: string
  /** IPv4 address on this interface, when declared */
  address?: Cidr
  /** IPv6 address on this interface, when declared (dual stack) */
  address6?: Cidr6
}

/** The interface whose subnet (of the address's family) holds an address, if any. */
export function interfaceFor(ifaces: Record<string, Iface>, ip: string): Iface | undefined {
  return Object.values(ifaces).find((i) => [i.address, i.address6].some((a) => a && inSubnet(ip, a)))
}

export interface NodeModel {
  name: string
  /** where hafw reaches the node over SSH */
  address: string
  priority: number
  interfaces: Record<string, Iface>
  ssh: SshTarget
}

export interface InstanceModel {
  name: string
  interface: string
  vrid: number
  /** the family of every VIP: an IPv6 instance is rendered as a native IPv6 VRRPv3 instance */
  family: Family
  vips: AnyCidr[]
  lvs_sync_daemon: boolean
  track_interfaces: string[]
}

export interface VrrpModel {
  sync_group: string
  nopreempt: boolean
  advert_int: number
  version: 2 | 3
  unicast: boolean
  auth?: { type: 'PASS' | 'AH'; password: string }
  garp_master_delay: number
  instances: InstanceModel[]
}

export interface SyncModel {
  interface: string
  mode: 'ftfw' | 'alarm' | 'notrack'
  transport: 'udp'
  /** the family of the sync messages (entries of both families are synced) */
  family: 'ipv4' | 'ipv6'
  port: number
  checksum: boolean
  protocols: Proto[]
  snd_socket_buffer: number
  rcv_socket_buffer: number
  hash_size: number
  hash_limit: number
  netlink_buffer_size: number
  netlink_buffer_size_max_growth: number
}

export interface FirewallModel {
  backend: 'iptables' | 'nftables'
  ownership: 'full' | 'chains'
  ssh_from: string[]
}

export interface RouteModel { to: string; via: string; interface?: string }
export interface DnatModel { in: string; proto?: Proto; dst: string; dport?: number; to: string; to_port?: number }
export interface SnatModel { out: string; proto?: Proto; src: string; dst?: string; dport?: number; to: string }
export interface AllowModel { in?: string; out?: string; proto?: Proto; src?: string; dst?: string; sport?: number; dport?: number }
export interface FilterModel { forward_policy: 'drop' | 'accept'; allow: AllowModel[]; log_dropped: string | false }

export interface CheckModel {
  type: 'tcp' | 'http' | 'smtp' | 'misc'
  connect_timeout: number
  retry: number
  delay_before_retry: number
  connect_port?: number
  url?: { path: string; status_code: number }
  misc_path?: string
}
export interface RealServerModel { address: string; port: number; weight: number; inhibit_on_failure: boolean; check?: CheckModel }
export interface VirtualServerModel {
  name: string
  vips: { address: string; port: number }[]
  protocol: 'tcp' | 'udp'
  lb_algo: string
  lb_kind: 'NAT' | 'DR' | 'TUN'
  delay_loop: number
  persistence_timeout?: number
  real_servers: RealServerModel[]
}

export interface ProbesModel {
  client: { address: string; address6?: string; segment: string }
  server: { address: string; address6?: string; port: number; segment: string }
}

export interface DrillModel {
  probes?: ProbesModel
  max_gap_ms: { graceful?: number; crash?: number; link?: number; partition?: number }
}

export interface PairModel {
  name: string
  kind: 'firewall' | 'loadbalancer'
  profile: Profile
  firewall: FirewallModel
  nodes: [NodeModel, NodeModel]
  vrrp: VrrpModel
  conntrack_sync: SyncModel | null
  routes: RouteModel[]
  nat: { dnat: DnatModel[]; snat: SnatModel[] }
  filter: FilterModel
  virtual_servers: VirtualServerModel[]
  drill: DrillModel
  sysctls: Record<string, string | number>
}

export interface PbrModel { interface: string; table: number; table_name: string; fwmark: string; gateway: string; gateway6?: string }

export interface HostModel {
  name: string
  address: string
  profile: Profile
  firewall: FirewallModel
  interfaces: Record<string, Iface>
  routes: RouteModel[]
  pbr: PbrModel[]
  sysctls: Record<string, string | number>
  ssh: SshTarget
}

export interface Model {
  version: 1
  site: string
  /** the file the inventory came from */
  source: string
  pairs: PairModel[]
  hosts: HostModel[]
}

/** Documented defaults (README "Inventory defaults"). */
export const DEFAULTS = {
  profile: 'debian' as Profile,
  ssh: { user: 'root', port: 22, identity: '~/.ssh/id_ed25519', known_hosts: '~/.ssh/known_hosts', sudo: false, connect_timeout: 10 },
  vrrp: { advert_int: 1, version: 2 as 2 | 3, unicast: false, garp_master_delay: 1 },
  conntrack_sync: {
    mode: 'ftfw' as const,
    transport: 'udp' as const,
    family: 'ipv4' as const,
    port: 3780,
    checksum: true,
    protocols: ['tcp', 'udp', 'icmp'] as Proto[],
    snd_socket_buffer: 1249280,
    rcv_socket_buffer: 1249280,
    hash_size: 32768,
    hash_limit: 131072,
    netlink_buffer_size: 2097152,
    netlink_buffer_size_max_growth: 8388608,
  },
  firewall: { backend: 'iptables' as const, ownership: 'full' as const },
  filter: { forward_policy: 'drop' as const, log_dropped: false as const },
  check: { connect_timeout: 5, retry: 3, delay_before_retry: 3 },
  virtual_server: { delay_loop: 10 },
}

function defined<T extends object>(o: T | undefined): Partial<T> {
  if (!o) return {}
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>
}

function cidr(s: string): AnyCidr {
  const c = parseAnyCidr(s)
  if (typeof c === 'string') throw new Error(`internal: unvalidated address ${s}`)
  return c
}

/** Copies a rule with every address field canonical. */
function canon<T extends object>(r: T, fields: readonly string[]): T {
  const o = { ...r } as Record<string, unknown>
  for (const f of fields) if (typeof o[f] === 'string') o[f] = canonicalAddr(o[f] as string)
  return o as T
}
const ADDR_FIELDS = ['to', 'via', 'dst', 'src', 'address', 'address6', 'gateway6'] as const

function ifaces(interfaces: Record<string, string>, addresses: Record<string, string | string[]>): Record<string, Iface> {
  const out: Record<string, Iface> = {}
  for (const name of Object.keys(interfaces).sort()) {
    const i: Iface = { name, device: interfaces[name]! }
    for (const a of addressList(Object.hasOwn(addresses, name) ? addresses[name] : undefined)) {
      const c = cidr(a)
      if (c.family === 6) i.address6 = c
      else i.address = c as Cidr
    }
    out[name] = i
  }
  return out
}

function ssh(host: string, ...layers: (RawSsh | undefined)[]): SshTarget {
  const merged = Object.assign({}, DEFAULTS.ssh, ...layers.map((l) => defined(l)))
  // an IPv6 host as conntrack and sshd print it, like every other address of the model
  return { host: canonicalAddr(host), ...merged } as SshTarget
}

function firewall(raw: RawInventory, own: RawPair['firewall']): FirewallModel {
  const m = { ...DEFAULTS.firewall, ...defined(raw.defaults?.firewall), ...defined(own) }
  return { backend: m.backend, ownership: m.ownership, ssh_from: (m.ssh_from ?? []).map((a) => canonicalAddr(a)) }
}

function node(raw: RawInventory, pair: RawPair, n: RawNode): NodeModel {
  return {
    name: n.name,
    address: n.address,
    priority: n.priority,
    interfaces: ifaces(n.interfaces, n.addresses),
    ssh: ssh(n.address, raw.defaults?.ssh, pair.ssh, n.ssh),
  }
}

function pair(raw: RawInventory, p: RawPair): PairModel {
  const d = raw.defaults
  const v = { ...DEFAULTS.vrrp, ...defined(d?.vrrp), ...defined(p.vrrp) }
  const used = new Set<string>()
  for (const i of p.vrrp.instances) used.add(i.interface)
  const vrrp: VrrpModel = {
    sync_group: p.vrrp.sync_group ?? `${p.name}_group`,
    nopreempt: p.vrrp.nopreempt ?? false,
    advert_int: v.advert_int,
    version: v.version,
    unicast: v.unicast,
    garp_master_delay: v.garp_master_delay,
    ...(v.auth ? { auth: v.auth } : {}),
    instances: p.vrrp.instances.map((i) => ({
      name: i.name,
      interface: i.interface,
      vrid: i.vrid,
      family: familyOf(i.vips[0]!),
      vips: i.vips.map(cidr),
      lvs_sync_daemon: i.lvs_sync_daemon ?? false,
      // Watch every interface a VRRP instance runs on: one dead link fails the whole group.
      track_interfaces: i.track_interfaces ?? [...used].sort(),
    })),
  }
  const sync: SyncModel | null = p.conntrack_sync
    ? ({ ...DEFAULTS.conntrack_sync, ...defined(d?.conntrack_sync), ...defined(p.conntrack_sync) } as SyncModel)
    : null
  const f = p.filter ?? {}
  return {
    name: p.name,
    kind: p.kind,
    profile: p.profile ?? d?.profile ?? DEFAULTS.profile,
    firewall: firewall(raw, p.firewall),
    nodes: [node(raw, p, p.nodes[0]!), node(raw, p, p.nodes[1]!)],
    vrrp,
    conntrack_sync: sync,
    routes: (p.routes ?? []).map((r) => canon(r, ADDR_FIELDS)),
    nat: { dnat: (p.nat?.dnat ?? []).map((r) => canon(r, ADDR_FIELDS)), snat: (p.nat?.snat ?? []).map((r) => canon(r, ADDR_FIELDS)) },
    filter: {
      forward_policy: f.forward_policy ?? DEFAULTS.filter.forward_policy,
      allow: (f.allow ?? []).map((r) => canon(r, ADDR_FIELDS)),
      log_dropped: f.log_dropped ?? DEFAULTS.filter.log_dropped,
    },
    virtual_servers: (p.virtual_servers ?? []).map((vs) => ({
      name: vs.name,
      vips: vs.vips.map((x) => canon(x, ADDR_FIELDS)),
      protocol: vs.protocol,
      lb_algo: vs.lb_algo,
      lb_kind: vs.lb_kind,
      delay_loop: vs.delay_loop ?? DEFAULTS.virtual_server.delay_loop,
      ...(vs.persistence_timeout !== undefined ? { persistence_timeout: vs.persistence_timeout } : {}),
      real_servers: vs.real_servers.map((rs) => ({
        address: canonicalAddr(rs.address),
        port: rs.port,
        weight: rs.weight ?? 1,
        inhibit_on_failure: rs.inhibit_on_failure ?? false,
        ...(rs.check
          ? {
              check: {
                ...DEFAULTS.check,
                ...defined(rs.check),
                ...(rs.check.url ? { url: { path: rs.check.url.path, status_code: rs.check.url.status_code ?? 200 } } : {}),
              } as CheckModel,
            }
          : {}),
      })),
    })),
    drill: {
      ...(p.drill?.probes ? { probes: { client: canon(p.drill.probes.client, ADDR_FIELDS), server: canon(p.drill.probes.server, ADDR_FIELDS) } } : {}),
      max_gap_ms: { ...defined(p.drill?.max_gap_ms) },
    },
    sysctls: { ...(p.sysctls ?? {}) },
  }
}

function host(raw: RawInventory, h: RawHost): HostModel {
  return {
    name: h.name,
    address: h.address,
    profile: h.profile ?? raw.defaults?.profile ?? DEFAULTS.profile,
    firewall: firewall(raw, h.firewall),
    interfaces: ifaces(h.interfaces, h.addresses),
    routes: (h.routes ?? []).map((r) => canon(r, ADDR_FIELDS)),
    pbr: h.pbr.map((r) => ({ ...canon(r, ADDR_FIELDS), fwmark: `0x${Number(r.fwmark).toString(16)}` })),
    sysctls: { ...(h.sysctls ?? {}) },
    ssh: ssh(h.address, raw.defaults?.ssh, h.ssh),
  }
}

export function buildModel(raw: RawInventory, source: string): Model {
  return {
    version: 1,
    site: raw.site,
    source,
    pairs: (raw.pairs ?? []).map((p) => pair(raw, p)),
    hosts: (raw.hosts ?? []).map((h) => host(raw, h)),
  }
}

/** Helpers later stages share. */
export function peerOf(p: PairModel, nodeName: string): NodeModel {
  const [a, b] = p.nodes
  return a.name === nodeName ? b : a
}

export function allNodes(m: Model): { pair: PairModel; node: NodeModel }[] {
  return m.pairs.flatMap((pair) => pair.nodes.map((node) => ({ pair, node })))
}
