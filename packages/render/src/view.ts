import type { AllowModel, CheckModel, Family, HostModel, Iface, Model, NodeModel, PairModel, Profile, RouteModel } from '@hafw/inventory'
import { familyOf, interfaceFor, ipToNum, parseIPv6Groups, peerOf } from '@hafw/inventory'
import { RenderError } from './errors.js'
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
  /** the rule's family (templates' partials see only the rule) */
  six: boolean
  ip: 'ip' | 'ip6'
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

/** The rules of one address family: iptables-restore and ip6tables-restore get one file each, nft one inet table. */
export interface FamilyRules {
  family: Family
  six: boolean
  /** nft's address keyword and `meta nfproto` name */
  ip: 'ip' | 'ip6'
  nfproto: 'ipv4' | 'ipv6'
  /** VIPs whose unmatched packets are dropped during the failover race (pairs with conntrack sync) */
  race_vips: string[]
  vrrp_devices: string[]
  sync: { device: string; port: number; peer: string } | null
  /** SSH sources of this family; with none in the inventory, SSH is open to both families */
  ssh_from: string[]
  ssh_any: boolean
  services: { proto: string; address: string; port: number }[]
  lvs_sync_device: string | null
  dnat: RuleView[]
  snat: RuleView[]
  allow: RuleView[]
  lvs_replies: RuleView[]
}

export interface FirewallView {
  iptables: boolean
  nftables: boolean
  full: boolean
  chains: boolean
  /** PBR-only host: the mangle table and nothing else */
  host: boolean
  rules_path: string
  /** iptables backend on a node with IPv6 addresses: the ip6tables-restore file */
  rules6_path: string | null
  chain: Chains
  /** iptables `ownership: chains`: the jumps hafw-firewall keeps in the built-in chains */
  jumps: { table: string; hook: string; chain: string }[]
  ssh_port: number
  /** IPv4 always; IPv6 when the node has IPv6 addresses */
  families: FamilyRules[]
  /** whether any family has failover-race guards */
  race: boolean
  forward: { drop: boolean; devices: string[]; log_prefix: string | null }
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
    /** an IPv6 instance: keepalived runs it as native IPv6 VRRPv3 */
    native_ipv6: boolean
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
  /** the sync messages travel over IPv6 */
  six: boolean
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
  ignore: { six: boolean; address: string }[]
}

export interface RoutingView {
  routes: { six: boolean; to: string; via: string; device: string }[]
  pbr: { device: string; table: number; table_name: string; mark: string; gateway: string; gateway6: string | null }[]
  /** rhel network-scripts: rule-DEV / route-DEV for IPv4, rule6-DEV / route6-DEV for IPv6 */
  rule_files: { name: string; device: string; rules: { mark: string; table_name: string }[] }[]
  route_files: { name: string; device: string; routes: { to: string; via: string; table_name: string | null }[] }[]
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

/** IPv4 before IPv6, each in numeric order. */
function byIp(a: string, b: string): number {
  const fa = familyOf(a)
  const fb = familyOf(b)
  if (fa !== fb) return fa - fb
  if (fa === 4) return ipToNum(a) - ipToNum(b)
  const ga = parseIPv6Groups(a)!
  const gb = parseIPv6Groups(b)!
  const k = ga.findIndex((x, i) => x !== gb[i])
  return k < 0 ? 0 : ga[k]! - gb[k]!
}
const uniq = <T>(xs: T[]) => [...new Set(xs)]

function device(ifaces: Record<string, Iface>, logical: string, where: string): Iface {
  const i = ifaces[logical]
  // The inventory rules guarantee this; a miss here is a bug, not bad input.
  if (!i) throw new RenderError(`internal: ${where} refers to interface "${logical}" which the node does not have`)
  return i
}

function addressOn(ifaces: Record<string, Iface>, logical: string, where: string, family: Family = 4): string {
  const i = device(ifaces, logical, where)
  const a = family === 6 ? i.address6 : i.address
  if (!a) throw new RenderError(`internal: ${where} needs an IPv${family} address on "${logical}"`)
  return a.ip
}

/** Whether a node has any IPv6 address: then it gets IPv6 rules, forwarding and ICMPv6. */
const hasSix = (ifaces: Record<string, Iface>) => Object.values(ifaces).some((i) => i.address6)

/** The family of a rule: that of its addresses, or null for a rule without any (it applies to both). */
function ruleFamily(r: object): Family | null {
  const o = r as Record<string, unknown>
  const a = ['src', 'dst', 'to', 'address'].map((k) => o[k]).find((x): x is string => typeof x === 'string')
  return a === undefined ? null : familyOf(a)
}

const ofFamily = <T extends object>(rs: T[], f: Family) => rs.filter((r) => (ruleFamily(r) ?? f) === f)

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

function rule(r: Partial<Record<keyof RuleView, string | number>>, ifaces: Record<string, Iface>, where: string, family: Family = 4): RuleView {
  const dev = (l: unknown) => (typeof l === 'string' ? device(ifaces, l, where).device : null)
  const proto = (r.proto as string | undefined) ?? null
  return {
    six: family === 6,
    ip: family === 6 ? 'ip6' : 'ip',
    in: dev(r.in),
    out: dev(r.out),
    // `proto: icmp` in a rule without addresses means ICMP of either family; iptables, ip6tables
    // and nft all know IPv6's by the /etc/protocols name.
    proto: proto === 'icmp' && family === 6 ? 'ipv6-icmp' : proto,
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
  six: boolean,
): Pick<FirewallView, 'iptables' | 'nftables' | 'full' | 'chains' | 'host' | 'rules_path' | 'rules6_path' | 'chain' | 'jumps'> {
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
    rules6_path: iptables && six ? (full ? layout.ip6tablesFull : CHAINS_FILES.ip6tables) : null,
    chain,
    jumps: full || !iptables ? [] : hooks.map(([table, hook, c]) => ({ table, hook, chain: chain[c] })),
  }
}

function route(r: RouteModel, ifaces: Record<string, Iface>, owner: string, k: number): RoutingView['routes'][number] {
  const six = familyOf(r.via) === 6
  if (r.interface) return { six, to: r.to, via: r.via, device: device(ifaces, r.interface, `routes[${k}]`).device }
  const on = interfaceFor(ifaces, r.via)
  if (!on) throw new RenderError(`${owner}: routes[${k}]: no interface has ${r.via} in its subnet; set routes[${k}].interface`)
  return { six, to: r.to, via: r.via, device: on.device }
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
    gateway6: p.gateway6 ?? null,
  }))
  const devices = uniq([...pv.map((p) => p.device), ...rv.map((r) => r.device)]).sort()
  const perFamily = <T>(f: (d: string, six: boolean) => T[]) =>
    devices.flatMap((d) => [false, true].map((six) => ({ d, six, xs: f(d, six) }))).filter((x) => x.xs.length)
  return {
    routes: rv,
    pbr: pv,
    rule_files: perFamily((d, six) => pv.filter((p) => p.device === d && (!six || p.gateway6)).map((p) => ({ mark: p.mark, table_name: p.table_name }))).map(
      ({ d, six, xs }) => ({ name: `rule${six ? '6' : ''}-${d}`, device: d, rules: xs }),
    ),
    route_files: perFamily((d, six) => [
      ...rv.filter((r) => r.device === d && r.six === six).map((r) => ({ to: r.to, via: r.via, table_name: null })),
      ...pv.filter((p) => p.device === d).flatMap((p) => {
        const via = six ? p.gateway6 : p.gateway
        return via ? [{ to: six ? '::/0' : '0.0.0.0/0', via, table_name: p.table_name }] : []
      }),
    ]).map(({ d, six, xs }) => ({ name: `route${six ? '6' : ''}-${d}`, device: d, routes: xs })),
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
      const six = i.family === 6
      return {
        name: i.name,
        device: own.device,
        vrid: i.vrid,
        priority: n.priority,
        advert_int: v.advert_int,
        // IPv6 VRRP exists only as version 3 (RFC 5798); one sync group may mix both versions.
        version: six ? 3 : v.version,
        native_ipv6: six,
        nopreempt: v.nopreempt,
        garp_master_delay: v.garp_master_delay,
        // keepalived warns (and -t fails) when an instance tracks its own interface.
        track: uniq(i.track_interfaces.map((t) => device(n.interfaces, t, where).device)).filter((d) => d !== own.device),
        unicast: v.unicast
          ? { src: addressOn(n.interfaces, i.interface, where, i.family), peers: [addressOn(peer.interfaces, i.interface, where, i.family)] }
          : null,
        // The inventory refuses auth with VRRPv3 (it has none).
        auth: v.auth && !six ? { type: v.auth.type, password: v.auth.password } : null,
        vips: i.vips.map((c) => ({ cidr: c.cidr, brd: c.family === 4 && c.prefix < 31 ? c.broadcast : null, dev: own.device })),
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
  const fam: Family = s.family === 'ipv6' ? 6 : 4
  const six = hasSix(n.interfaces)
  const own = uniq(Object.values(n.interfaces).flatMap((i) => [i.address?.ip, i.address6?.ip].filter((a): a is string => !!a))).sort(byIp)
  return {
    mode: ({ ftfw: 'FTFW', alarm: 'ALARM', notrack: 'NOTRACK' } as const)[s.mode],
    six: fam === 6,
    src: addressOn(n.interfaces, s.interface, where, fam),
    dst: addressOn(peer.interfaces, s.interface, where, fam),
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
    // A dual-stack node syncs ICMPv6 with ICMP (/etc/protocols' alias, as conntrackd looks it up).
    protocols: s.protocols.flatMap((x) => (x === 'icmp' && six ? ['ICMP', 'IPv6-ICMP'] : [x.toUpperCase()])),
    // As in seed 001: loopback and every address of this node; flows to or from the firewall
    // itself are not replicated.
    ignore: [...(six ? ['127.0.0.1', '::1'] : ['127.0.0.1']), ...own].sort(byIp).map((address) => ({ six: familyOf(address) === 6, address })),
  }
}

/** A family's rules with nothing in them yet (a PBR host has no more). */
function noRules(f: Family): FamilyRules {
  return {
    ...(f === 6 ? { family: 6, six: true, ip: 'ip6', nfproto: 'ipv6' } : { family: 4, six: false, ip: 'ip', nfproto: 'ipv4' }),
    race_vips: [],
    vrrp_devices: [],
    sync: null,
    ssh_from: [],
    ssh_any: true,
    services: [],
    lvs_sync_device: null,
    dnat: [],
    snat: [],
    allow: [],
    lvs_replies: [],
  }
}

/** SSH sources of one family; without any in the inventory SSH is open to both. */
const sshRules = (fw: PairModel['firewall'], f: Family) => ({ ssh_from: fw.ssh_from.filter((a) => familyOf(a) === f), ssh_any: !fw.ssh_from.length })

const nodeFamilies = (ifaces: Record<string, Iface>): Family[] => (hasSix(ifaces) ? [4, 6] : [4])

function pairFamily(p: PairModel, n: NodeModel, f: Family): FamilyRules {
  const where = `pair ${p.name}`
  const s = p.conntrack_sync
  const devs = (ls: string[]) => uniq(ls.map((l) => device(n.interfaces, l, where).device))
  const lvs = p.vrrp.instances.find((i) => i.lvs_sync_daemon)
  const instances = p.vrrp.instances.filter((i) => i.family === f)
  const syncHere = s && (s.family === 'ipv6' ? 6 : 4) === f
  return {
    ...noRules(f),
    ...sshRules(p.firewall, f),
    // Only a pair that commits replicated state has the race; an LVS pair's synced IPVS flows
    // arrive mid-stream and must reach IPVS.
    race_vips: s ? uniq(instances.flatMap((i) => i.vips.map((c) => c.ip))) : [],
    vrrp_devices: devs(instances.map((i) => i.interface)),
    sync: syncHere
      ? { device: device(n.interfaces, s.interface, where).device, port: s.port, peer: addressOn(peerOf(p, n.name).interfaces, s.interface, where, f) }
      : null,
    services: p.virtual_servers.flatMap((vs) => ofFamily(vs.vips, f).map((v) => ({ proto: vs.protocol, address: v.address, port: v.port }))),
    // keepalived's IPVS sync daemon talks IPv4 multicast.
    lvs_sync_device: lvs && f === 4 ? device(n.interfaces, lvs.interface, where).device : null,
    dnat: ofFamily(p.nat.dnat, f).map((r, k) => rule({ ...r }, n.interfaces, `${where} nat.dnat[${k}]`, f)),
    snat: ofFamily(p.nat.snat, f).map((r, k) => rule({ ...r }, n.interfaces, `${where} nat.snat[${k}]`, f)),
    allow: ofFamily(p.filter.allow, f).map((r: AllowModel, k) => rule({ ...r }, n.interfaces, `${where} filter.allow[${k}]`, f)),
    // LVS-NAT: real servers answer through the director; let those replies pass FORWARD.
    lvs_replies: p.virtual_servers
      .filter((vs) => vs.lb_kind === 'NAT')
      .flatMap((vs) => ofFamily(vs.real_servers, f).map((rs) => rule({ proto: vs.protocol, src: rs.address, sport: rs.port }, n.interfaces, where, f))),
  }
}

function pairFirewall(p: PairModel, n: NodeModel, layout: Layout): FirewallView {
  const families = nodeFamilies(n.interfaces).map((f) => pairFamily(p, n, f))
  return {
    ...firewallBase(p.firewall, layout, false, hasSix(n.interfaces)),
    ssh_port: n.ssh.port,
    families,
    race: families.some((f) => f.race_vips.length > 0),
    forward: {
      drop: p.filter.forward_policy === 'drop',
      devices: Object.values(n.interfaces).map((i) => i.device),
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
    sysctl: sysctl(
      {
        'net.ipv4.ip_forward': 1,
        ...(hasSix(n.interfaces) ? { 'net.ipv6.conf.all.forwarding': 1 } : {}),
        ...(ct ? { 'net.netfilter.nf_conntrack_tcp_loose': 0, 'net.netfilter.nf_conntrack_timestamp': 1 } : {}),
      },
      p.sysctls,
    ),
  }
}

export function hostView(m: Model, h: HostModel, profile?: Profile): NodeView {
  const layout = LAYOUTS[profile ?? h.profile]
  const six = hasSix(h.interfaces)
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
      ...firewallBase(h.firewall, layout, true, six),
      ssh_port: h.ssh.port,
      families: nodeFamilies(h.interfaces).map((f) => ({ ...noRules(f), ...sshRules(h.firewall, f) })),
      race: false,
      forward: { drop: false, devices: [], log_prefix: null },
      pbr: h.pbr.map((p, k) => ({ device: device(h.interfaces, p.interface, `host ${h.name} pbr[${k}]`).device, mark: p.fwmark })),
    },
    routing: routing(h.routes, h.pbr, h.interfaces, `host ${h.name}`),
    // Loose reverse-path filtering: requests reach this host on either uplink while the
    // reverse route (main table) points at the other one.
    sysctl: sysctl({ 'net.ipv4.conf.all.rp_filter': 2 }, h.sysctls),
  }
}
