import type { AllowModel, CheckModel, HostModel, Iface, Model, NodeModel, PairModel, Profile, RouteModel } from '@hafw/inventory'
import { inSubnet, ipToNum, peerOf } from '@hafw/inventory'
import { RenderError } from './engine.js'
import { CHAINS_FILES, LAYOUTS, RUNTIME, SCRIPTS, type Layout } from './layout.js'

/*
 * model -> view: everything a template needs, already resolved (devices instead of logical
 * names, the peer's addresses, defaults), with every optional field present as null so strict
 * templates can tell "absent" from "misspelt". Templates hold the syntax; this file holds none.
 */

export type Kind = 'firewall' | 'loadbalancer' | 'host'

export interface Chains {
  raw_pre: string
  raw_out: string
  mangle_pre: string
  mangle_out: string
  nat_pre: string
  nat_post: string
  input: string
  forward: string
}

export interface RuleView {
  in: string | null
  out: string | null
  proto: string | null
  src: string | null
  dst: string | null
  sport: number | null
  dport: number | null
  /** whether the rule matches ports (nft needs `tcp dport`, not `meta l4proto tcp`) */
  ports: boolean
  to: string | null
  to_port: number | null
}

export interface FirewallView {
  iptables: boolean
  nftables: boolean
  full: boolean
  chains: boolean
  /** PBR-only host: the mangle table and nothing else */
  host: boolean
  rules_path: string
  chain: Chains
  /** iptables `ownership: chains`: the jumps hafw-firewall keeps in the built-in chains */
  jumps: { table: string; hook: string; chain: string }[]
  /** VIPs whose unmatched packets are dropped during the failover race (pairs with conntrack sync) */
  race_vips: string[]
  vrrp_devices: string[]
  sync: { device: string; port: number; peer: string } | null
  ssh: { port: number; from: string[] }
  services: { proto: string; address: string; port: number }[]
  lvs_sync_device: string | null
  dnat: RuleView[]
  snat: RuleView[]
  forward: { drop: boolean; devices: string[]; allow: RuleView[]; lvs_replies: RuleView[]; log_prefix: string | null }
  pbr: { device: string; mark: string }[]
}

export interface CheckView {
  block: 'TCP_CHECK' | 'HTTP_GET' | 'SMTP_CHECK' | 'MISC_CHECK'
  connect_timeout: number | null
  misc_timeout: number | null
  retry: number
  delay_before_retry: number
  connect_port: number | null
  url: { path: string; status_code: number } | null
  misc_path: string | null
}

export interface KeepalivedView {
  router_id: string
  notify: string
  /** null with a single instance: keepalived warns about a one-member sync group */
  sync_group: { name: string; instances: string[] } | null
  instances: {
    name: string
    device: string
    vrid: number
    priority: number
    advert_int: number
    version: number
    nopreempt: boolean
    garp_master_delay: number
    track: string[]
    unicast: { src: string; peers: string[] } | null
    auth: { type: string; password: string } | null
    vips: { cidr: string; brd: string | null; dev: string }[]
    notify: boolean
  }[]
  lvs_sync_daemon: { device: string; instance: string } | null
  virtual_servers: {
    name: string
    vips: { address: string; port: number }[]
    delay_loop: number
    lb_algo: string
    lb_kind: string
    protocol: string
    persistence_timeout: number | null
    real_servers: { address: string; port: number; weight: number; inhibit_on_failure: boolean; check: CheckView | null }[]
  }[]
}

export interface ConntrackdView {
  mode: 'FTFW' | 'ALARM' | 'NOTRACK'
  src: string
  dst: string
  port: number
  device: string
  snd_socket_buffer: number
  rcv_socket_buffer: number
  checksum: 'on' | 'off'
  hash_size: number
  hash_limit: number
  netlink_buffer_size: number
  netlink_buffer_size_max_growth: number
  lock_file: string
  socket: string
  protocols: string[]
  ignore: string[]
}

export interface RoutingView {
  routes: { to: string; via: string; device: string }[]
  pbr: { device: string; table: number; table_name: string; mark: string; gateway: string }[]
  rule_files: { device: string; rules: { mark: string; table_name: string }[] }[]
  route_files: { device: string; routes: { to: string; via: string; table_name: string | null }[] }[]
}

export interface NodeView {
  site: string
  kind: Kind
  pair: string | null
  node: string
  profile: Profile
  layout: Layout
  scripts: typeof SCRIPTS
  runtime: typeof RUNTIME
  keepalived: KeepalivedView | null
  conntrackd: ConntrackdView | null
  firewall: FirewallView
  routing: RoutingView | null
  sysctl: { entries: { key: string; value: string }[]; modules: string[] }
}

const byIp = (a: string, b: string) => ipToNum(a) - ipToNum(b)
const uniq = <T>(xs: T[]) => [...new Set(xs)]

function device(ifaces: Record<string, Iface>, logical: string, where: string): Iface {
  const i = ifaces[logical]
  // The inventory rules guarantee this; a miss here is a bug, not bad input.
  if (!i) throw new RenderError(`internal: ${where} refers to interface "${logical}" which the node does not have`)
  return i
}

function addressOn(ifaces: Record<string, Iface>, logical: string, where: string): string {
  const a = device(ifaces, logical, where).address
  if (!a) throw new RenderError(`internal: ${where} needs an address on "${logical}"`)
  return a.ip
}

function chainNames(full: boolean): Chains {
  const n = (builtin: string) => (full ? builtin : `HAFW-${builtin}`)
  return {
    raw_pre: n('PREROUTING'),
    raw_out: n('OUTPUT'),
    mangle_pre: n('PREROUTING'),
    mangle_out: n('OUTPUT'),
    nat_pre: n('PREROUTING'),
    nat_post: n('POSTROUTING'),
    input: n('INPUT'),
    forward: n('FORWARD'),
  }
}

function rule(r: Partial<Record<keyof RuleView, string | number>>, ifaces: Record<string, Iface>, where: string): RuleView {
  const dev = (l: unknown) => (typeof l === 'string' ? device(ifaces, l, where).device : null)
  return {
    in: dev(r.in),
    out: dev(r.out),
    proto: (r.proto as string | undefined) ?? null,
    src: (r.src as string | undefined) ?? null,
    dst: (r.dst as string | undefined) ?? null,
    sport: (r.sport as number | undefined) ?? null,
    dport: (r.dport as number | undefined) ?? null,
    ports: r.sport !== undefined || r.dport !== undefined,
    to: (r.to as string | undefined) ?? null,
    to_port: (r.to_port as number | undefined) ?? null,
  }
}

function firewallBase(
  fw: PairModel['firewall'],
  layout: Layout,
  host: boolean,
): Pick<FirewallView, 'iptables' | 'nftables' | 'full' | 'chains' | 'host' | 'rules_path' | 'chain' | 'jumps'> {
  const full = fw.ownership === 'full'
  const iptables = fw.backend === 'iptables'
  const chain = chainNames(full)
  const hooks: [string, string, keyof Chains][] = host
    ? [['mangle', 'PREROUTING', 'mangle_pre'], ['mangle', 'OUTPUT', 'mangle_out']]
    : [['raw', 'PREROUTING', 'raw_pre'], ['raw', 'OUTPUT', 'raw_out'], ['nat', 'PREROUTING', 'nat_pre'], ['nat', 'POSTROUTING', 'nat_post'], ['filter', 'INPUT', 'input'], ['filter', 'FORWARD', 'forward']]
  return {
    iptables,
    nftables: !iptables,
    full,
    chains: !full,
    host,
    // A PBR host's nft table is always hafw's own: `flush ruleset` would take Docker's rules with it.
    rules_path: full ? (iptables ? layout.iptablesFull : host ? CHAINS_FILES.nftables : layout.nftablesFull) : CHAINS_FILES[fw.backend],
    chain,
    jumps: full || !iptables ? [] : hooks.map(([table, hook, c]) => ({ table, hook, chain: chain[c] })),
  }
}

function route(r: RouteModel, ifaces: Record<string, Iface>, owner: string, k: number): { to: string; via: string; device: string } {
  if (r.interface) return { to: r.to, via: r.via, device: device(ifaces, r.interface, `routes[${k}]`).device }
  const on = Object.values(ifaces).find((i) => i.address && inSubnet(r.via, i.address))
  if (!on) throw new RenderError(`${owner}: routes[${k}]: no interface has ${r.via} in its subnet; set routes[${k}].interface`)
  return { to: r.to, via: r.via, device: on.device }
}

function routing(routes: RouteModel[], pbr: HostModel['pbr'], ifaces: Record<string, Iface>, owner: string): RoutingView | null {
  if (!routes.length && !pbr.length) return null
  const rv = routes.map((r, k) => route(r, ifaces, owner, k))
  const pv = pbr.map((p, k) => ({
    device: device(ifaces, p.interface, `pbr[${k}]`).device,
    table: p.table,
    table_name: p.table_name,
    mark: p.fwmark,
    gateway: p.gateway,
  }))
  const devices = uniq([...pv.map((p) => p.device), ...rv.map((r) => r.device)]).sort()
  return {
    routes: rv,
    pbr: pv,
    rule_files: devices
      .map((d) => ({ device: d, rules: pv.filter((p) => p.device === d).map((p) => ({ mark: p.mark, table_name: p.table_name })) }))
      .filter((f) => f.rules.length),
    route_files: devices
      .map((d) => ({
        device: d,
        routes: [
          ...rv.filter((r) => r.device === d).map((r) => ({ to: r.to, via: r.via, table_name: null })),
          ...pv.filter((p) => p.device === d).map((p) => ({ to: '0.0.0.0/0', via: p.gateway, table_name: p.table_name })),
        ],
      }))
      .filter((f) => f.routes.length),
  }
}

/** Design defaults first; the inventory's own sysctls override them. Sorted for stable output. */
function sysctl(defaults: Record<string, string | number>, own: Record<string, string | number>): NodeView['sysctl'] {
  const all = { ...defaults, ...own }
  const entries = Object.keys(all)
    .sort()
    .map((key) => ({ key, value: String(all[key]) }))
  // net.netfilter.* exists only once nf_conntrack is loaded: load it before systemd-sysctl runs.
  const modules = entries.some((e) => e.key.startsWith('net.netfilter.')) ? ['nf_conntrack'] : []
  return { entries, modules }
}

function check(c: CheckModel): CheckView {
  const block = ({ tcp: 'TCP_CHECK', http: 'HTTP_GET', smtp: 'SMTP_CHECK', misc: 'MISC_CHECK' } as const)[c.type]
  const misc = c.type === 'misc'
  return {
    block,
    connect_timeout: misc ? null : c.connect_timeout,
    misc_timeout: misc ? c.connect_timeout : null,
    retry: c.retry,
    delay_before_retry: c.delay_before_retry,
    connect_port: c.connect_port ?? null,
    url: c.url ?? null,
    misc_path: c.misc_path ?? null,
  }
}

function keepalived(p: PairModel, n: NodeModel): KeepalivedView {
  const peer = peerOf(p, n.name)
  const v = p.vrrp
  const where = `pair ${p.name}`
  const lvs = v.instances.filter((i) => i.lvs_sync_daemon)
  if (lvs.length > 1) {
    throw new RenderError(`${where}: lvs_sync_daemon is set on ${lvs.map((i) => i.name).join(' and ')}; keepalived runs one sync daemon, set it on one instance`)
  }
  const group = v.instances.length > 1
  return {
    router_id: n.name,
    notify: SCRIPTS.notify,
    sync_group: group ? { name: v.sync_group, instances: v.instances.map((i) => i.name) } : null,
    instances: v.instances.map((i) => {
      const own = device(n.interfaces, i.interface, where)
      return {
        name: i.name,
        device: own.device,
        vrid: i.vrid,
        priority: n.priority,
        advert_int: v.advert_int,
        version: v.version,
        nopreempt: v.nopreempt,
        garp_master_delay: v.garp_master_delay,
        // keepalived warns (and -t fails) when an instance tracks its own interface.
        track: uniq(i.track_interfaces.map((t) => device(n.interfaces, t, where).device)).filter((d) => d !== own.device),
        unicast: v.unicast
          ? { src: addressOn(n.interfaces, i.interface, where), peers: [addressOn(peer.interfaces, i.interface, where)] }
          : null,
        auth: v.auth ? { type: v.auth.type, password: v.auth.password } : null,
        vips: i.vips.map((c) => ({ cidr: c.cidr, brd: c.prefix < 31 ? c.broadcast : null, dev: own.device })),
        notify: !group,
      }
    }),
    lvs_sync_daemon: lvs[0] ? { device: device(n.interfaces, lvs[0].interface, where).device, instance: lvs[0].name } : null,
    virtual_servers: p.virtual_servers.map((vs) => ({
      name: vs.name,
      vips: vs.vips,
      delay_loop: vs.delay_loop,
      lb_algo: vs.lb_algo,
      lb_kind: vs.lb_kind,
      protocol: vs.protocol.toUpperCase(),
      persistence_timeout: vs.persistence_timeout ?? null,
      real_servers: vs.real_servers.map((rs) => ({
        address: rs.address,
        port: rs.port,
        weight: rs.weight,
        inhibit_on_failure: rs.inhibit_on_failure,
        check: rs.check ? check(rs.check) : null,
      })),
    })),
  }
}

function conntrackd(p: PairModel, n: NodeModel): ConntrackdView | null {
  const s = p.conntrack_sync
  if (!s) return null
  const where = `pair ${p.name} conntrack_sync`
  const peer = peerOf(p, n.name)
  return {
    mode: ({ ftfw: 'FTFW', alarm: 'ALARM', notrack: 'NOTRACK' } as const)[s.mode],
    src: addressOn(n.interfaces, s.interface, where),
    dst: addressOn(peer.interfaces, s.interface, where),
    port: s.port,
    device: device(n.interfaces, s.interface, where).device,
    snd_socket_buffer: s.snd_socket_buffer,
    rcv_socket_buffer: s.rcv_socket_buffer,
    checksum: s.checksum ? 'on' : 'off',
    hash_size: s.hash_size,
    hash_limit: s.hash_limit,
    netlink_buffer_size: s.netlink_buffer_size,
    netlink_buffer_size_max_growth: s.netlink_buffer_size_max_growth,
    lock_file: RUNTIME.conntrackdLock,
    socket: RUNTIME.conntrackdSocket,
    protocols: s.protocols.map((x) => x.toUpperCase()),
    // As in seed 001: loopback and every address of this node; flows to or from the firewall
    // itself are not replicated.
    ignore: ['127.0.0.1', ...uniq(Object.values(n.interfaces).flatMap((i) => (i.address ? [i.address.ip] : []))).sort(byIp)],
  }
}

function pairFirewall(p: PairModel, n: NodeModel, layout: Layout): FirewallView {
  const base = firewallBase(p.firewall, layout, false)
  const where = `pair ${p.name}`
  const s = p.conntrack_sync
  const devs = (ls: string[]) => uniq(ls.map((l) => device(n.interfaces, l, where).device))
  const lvs = p.vrrp.instances.find((i) => i.lvs_sync_daemon)
  return {
    ...base,
    // Only a pair that commits replicated state has the race; an LVS pair's synced IPVS flows
    // arrive mid-stream and must reach IPVS.
    race_vips: s ? uniq(p.vrrp.instances.flatMap((i) => i.vips.map((c) => c.ip))) : [],
    vrrp_devices: devs(p.vrrp.instances.map((i) => i.interface)),
    sync: s
      ? { device: device(n.interfaces, s.interface, where).device, port: s.port, peer: addressOn(peerOf(p, n.name).interfaces, s.interface, where) }
      : null,
    ssh: { port: n.ssh.port, from: p.firewall.ssh_from },
    services: p.virtual_servers.flatMap((vs) => vs.vips.map((v) => ({ proto: vs.protocol, address: v.address, port: v.port }))),
    lvs_sync_device: lvs ? device(n.interfaces, lvs.interface, where).device : null,
    dnat: p.nat.dnat.map((r, k) => rule({ ...r }, n.interfaces, `${where} nat.dnat[${k}]`)),
    snat: p.nat.snat.map((r, k) => rule({ ...r }, n.interfaces, `${where} nat.snat[${k}]`)),
    forward: {
      drop: p.filter.forward_policy === 'drop',
      devices: Object.values(n.interfaces).map((i) => i.device),
      allow: p.filter.allow.map((r: AllowModel, k) => rule({ ...r }, n.interfaces, `${where} filter.allow[${k}]`)),
      // LVS-NAT: real servers answer through the director; let those replies pass FORWARD.
      lvs_replies: p.virtual_servers
        .filter((vs) => vs.lb_kind === 'NAT')
        .flatMap((vs) => vs.real_servers.map((rs) => rule({ proto: vs.protocol, src: rs.address, sport: rs.port }, n.interfaces, where))),
      log_prefix: p.filter.forward_policy === 'drop' && p.filter.log_dropped !== false ? p.filter.log_dropped : null,
    },
    pbr: [],
  }
}

export function pairNodeView(m: Model, p: PairModel, n: NodeModel, profile?: Profile): NodeView {
  const layout = LAYOUTS[profile ?? p.profile]
  const ct = conntrackd(p, n)
  return {
    site: m.site,
    kind: p.kind,
    pair: p.name,
    node: n.name,
    profile: layout.profile,
    layout,
    scripts: SCRIPTS,
    runtime: RUNTIME,
    keepalived: keepalived(p, n),
    conntrackd: ct,
    firewall: pairFirewall(p, n, layout),
    routing: routing(p.routes, [], n.interfaces, `pair ${p.name} node ${n.name}`),
    // tcp_loose=0: a mid-flow packet without a conntrack entry is INVALID (dropped by the
    // ruleset) instead of being picked up as a new flow; see hafw-notify. timestamp=1: the
    // kernel table then prints each entry's age, so `hafw verify` can tell young entries from
    // missing ones in one poll.
    sysctl: sysctl({ 'net.ipv4.ip_forward': 1, ...(ct ? { 'net.netfilter.nf_conntrack_tcp_loose': 0, 'net.netfilter.nf_conntrack_timestamp': 1 } : {}) }, p.sysctls),
  }
}

export function hostView(m: Model, h: HostModel, profile?: Profile): NodeView {
  const layout = LAYOUTS[profile ?? h.profile]
  return {
    site: m.site,
    kind: 'host',
    pair: null,
    node: h.name,
    profile: layout.profile,
    layout,
    scripts: SCRIPTS,
    runtime: RUNTIME,
    keepalived: null,
    conntrackd: null,
    firewall: {
      ...firewallBase(h.firewall, layout, true),
      race_vips: [],
      vrrp_devices: [],
      sync: null,
      ssh: { port: h.ssh.port, from: h.firewall.ssh_from },
      services: [],
      lvs_sync_device: null,
      dnat: [],
      snat: [],
      forward: { drop: false, devices: [], allow: [], lvs_replies: [], log_prefix: null },
      pbr: h.pbr.map((p, k) => ({ device: device(h.interfaces, p.interface, `host ${h.name} pbr[${k}]`).device, mark: p.fwmark })),
    },
    routing: routing(h.routes, h.pbr, h.interfaces, `host ${h.name}`),
    // Loose reverse-path filtering: requests reach this host on either uplink while the
    // reverse route (main table) points at the other one.
    sysctl: sysctl({ 'net.ipv4.conf.all.rp_filter': 2 }, h.sysctls),
  }
}
