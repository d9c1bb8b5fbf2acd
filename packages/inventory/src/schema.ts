import * as z from 'zod'
import { CheckCommand, Device, Fingerprint, Hex32, HostName, LocalPath, Logical, LogPrefix, Name, UrlPath, UserName, VrrpPassword } from './safe.js'
import { familyOf, hostAddressProblem, ipProblem, ipv4Problem, ipv6Problem, isIPv4, parseAnyCidr } from './ip.js'

// An inventory is parsed once or twice per process: generating and compiling zod's fast path
// for every object schema first costs more than it saves (the first parse took 45 ms with it,
// 32 ms without).
z.config({ jitless: true })

/*
 * The inventory as written (see ../shared/design/inventory-example.yaml). Every object is strict:
 * an unknown field is an error, never silently ignored. Defaults are not applied here; model.ts
 * fills them so that `hafw inventory show` can print the result.
 */

const int = (min: number, max: number, what: string) =>
  z.number({ error: `expected ${what}` }).int({ error: `expected ${what}` }).min(min, { error: `expected ${what}` }).max(max, { error: `expected ${what}` })

export const Port = int(1, 65535, 'a port number 1..65535')
export const Ipv4 = z.string({ error: 'expected an IPv4 address' }).superRefine((s, ctx) => {
  const why = ipv4Problem(s)
  if (why) ctx.addIssue({ code: 'custom', message: why })
})
/** An IPv6 address without a prefix: no zone index, not IPv4-mapped. */
export const Ipv6 = z.string({ error: 'expected an IPv6 address' }).superRefine((s, ctx) => {
  const why = ipv6Problem(s)
  if (why) ctx.addIssue({ code: 'custom', message: why })
})
/** An address of either family without a prefix. */
export const IpAddr = z.string({ error: 'expected an IPv4 or IPv6 address' }).superRefine((s, ctx) => {
  const why = ipProblem(s)
  if (why) ctx.addIssue({ code: 'custom', message: why })
})
const hostCidrProblem = (s: string): string | null => {
  const r = parseAnyCidr(s)
  return typeof r === 'string' ? r : hostAddressProblem(r)
}
/** An address a host holds (node interface, VIP), either family: also not the network, broadcast, link-local... address. */
export const HostCidr = z.string({ error: 'expected address/prefix' }).superRefine((s, ctx) => {
  const why = hostCidrProblem(s)
  if (why) ctx.addIssue({ code: 'custom', message: why })
})
/** An interface's addresses as written: one string or a list of at most one per family. */
export function addressList(v: string | string[] | undefined): string[] {
  return v === undefined ? [] : typeof v === 'string' ? [v] : v
}

/**
 * A node interface's addresses: one address/prefix, or a list of at most one per family
 * (dual stack: [192.168.0.41/24, 2001:db8::41/64]). The list's items are checked here so each
 * error points at its own item.
 */
export const InterfaceAddress = z
  .union([z.string(), z.array(z.string({ error: 'expected address/prefix' }))], { error: 'expected address/prefix or a list of them (one IPv4, one IPv6)' })
  .superRefine((v, ctx) => {
    const seen = new Map<number, number>()
    addressList(v).forEach((s, k) => {
      const path = typeof v === 'string' ? [] : [k]
      const why = hostCidrProblem(s)
      if (why) return ctx.addIssue({ code: 'custom', message: why, path })
      const fam = familyOf(s)
      if (seen.has(fam)) ctx.addIssue({ code: 'custom', path, message: `a second IPv${fam} address; an interface takes one address per family (the first is item ${seen.get(fam)})` })
      else seen.set(fam, k)
    })
    if (Array.isArray(v) && (v.length === 0 || v.length > 2)) ctx.addIssue({ code: 'custom', message: `expected one or two addresses (one per family), found ${v.length}` })
    else if (!seen.has(4) && seen.size) ctx.addIssue({ code: 'custom', message: 'an interface needs an IPv4 address next to its IPv6 one (IPv6-only interfaces are not supported yet)' })
  })
/** Where hafw reaches a node over SSH: a host name, an IPv4 address (a dotted number must be one) or an IPv6 address. */
export const NodeAddress = z.string({ error: 'expected a host name or an IP address' }).superRefine((s, ctx) => {
  // an address when it looks like one (a dotted number, a ":" or a zone), else a host name
  const why = /^[\d.]+$|[:%]/.test(s) ? ipProblem(s) : (HostName.safeParse(s).error?.issues[0]?.message ?? null)
  if (why) ctx.addIssue({ code: 'custom', message: why })
})
/** An address or a subnet in a rule, either family: "192.168.1.60", "192.168.1.0/24", "2001:db8:1::/64". */
export const AddrOrNet = z.string({ error: 'expected an IP address or address/prefix' }).superRefine((s, ctx) => {
  if (!s.includes('/')) {
    const why = ipProblem(s)
    if (why) ctx.addIssue({ code: 'custom', message: why })
    return
  }
  const r = parseAnyCidr(s)
  if (typeof r === 'string') ctx.addIssue({ code: 'custom', message: r })
  else if (r.ip !== r.network) ctx.addIssue({ code: 'custom', message: `${s} has host bits set; write the subnet as ${r.network}/${r.prefix}` })
})
const Proto = z.enum(['tcp', 'udp', 'icmp'], { error: 'expected one of tcp, udp, icmp' })

export const SshSchema = z.strictObject({
  user: UserName.optional(),
  port: Port.optional(),
  identity: LocalPath.optional(),
  known_hosts: LocalPath.optional(),
  /** Pinned host key fingerprints, checked in addition to known_hosts. */
  host_key: Fingerprint.optional(),
  /** "user@host:port" of a jump host. */
  jump: z.string().regex(/^([a-z_][a-z0-9_-]{0,31}@)?[A-Za-z0-9.-]{1,253}(:\d{1,5})?$/, { error: 'expected [user@]host[:port]' }).optional(),
  /** Run privileged commands with sudo (non-root user). */
  sudo: z.boolean().optional(),
  connect_timeout: int(1, 300, 'seconds 1..300').optional(),
})

const VrrpAuth = z.strictObject({
  type: z.enum(['PASS', 'AH'], { error: 'expected PASS or AH' }),
  password: VrrpPassword,
})

export const VrrpDefaultsSchema = z.strictObject({
  advert_int: int(1, 255, 'advert_int in seconds 1..255').optional(),
  version: z.union([z.literal(2), z.literal(3)], { error: 'expected VRRP version 2 or 3' }).optional(),
  /** Unicast peers instead of multicast (the peer's address on the instance's interface). */
  unicast: z.boolean().optional(),
  auth: VrrpAuth.optional(),
  /** Gratuitous ARP repeat after becoming MASTER. */
  garp_master_delay: int(0, 255, 'seconds 0..255').optional(),
})

export const SyncMode = z.enum(['ftfw', 'alarm', 'notrack'], { error: 'expected one of ftfw, alarm, notrack' })

export const ConntrackSyncDefaultsSchema = z.strictObject({
  mode: SyncMode.optional(),
  transport: z.enum(['udp'], { error: 'expected udp (the only transport hafw renders)' }).optional(),
  port: Port.optional(),
  checksum: z.boolean().optional(),
  protocols: z.array(Proto).min(1).optional(),
  snd_socket_buffer: int(65536, 1 << 30, 'bytes 65536..1073741824').optional(),
  rcv_socket_buffer: int(65536, 1 << 30, 'bytes 65536..1073741824').optional(),
  /** The family the sync messages travel in (both families' entries are synced either way). */
  family: z.enum(['ipv4', 'ipv6'], { error: 'expected ipv4 or ipv6' }).optional(),
  hash_size: int(1024, 1 << 24, 'a size 1024..16777216').optional(),
  hash_limit: int(1024, 1 << 26, 'a size 1024..67108864').optional(),
  netlink_buffer_size: int(65536, 1 << 30, 'bytes').optional(),
  netlink_buffer_size_max_growth: int(65536, 1 << 30, 'bytes').optional(),
})

export const FirewallDefaultsSchema = z.strictObject({
  backend: z.enum(['iptables', 'nftables'], { error: 'expected iptables or nftables' }).optional(),
  ownership: z.enum(['full', 'chains'], { error: 'expected full or chains' }).optional(),
  /** Allow SSH to nodes from these sources (default: anywhere). */
  ssh_from: z.array(AddrOrNet).optional(),
})

export const ProfileSchema = z.enum(['debian', 'rhel'], { error: 'expected debian or rhel' })

const InterfaceMap = z.record(Logical, Device, { error: 'expected a map of logical name to device name' })
const AddressMap = z.record(Logical, InterfaceAddress, { error: 'expected a map of logical name to address/prefix' })

export const NodeSchema = z.strictObject({
  name: Name,
  address: NodeAddress,
  priority: int(1, 254, 'a VRRP priority 1..254'),
  interfaces: InterfaceMap,
  addresses: AddressMap,
  ssh: SshSchema.optional(),
})

export const InstanceSchema = z.strictObject({
  name: Name,
  interface: Logical,
  vrid: int(1, 255, 'a VRID 1..255'),
  vips: z.array(HostCidr).min(1, { error: 'an instance needs at least one VIP' }),
  lvs_sync_daemon: z.boolean().optional(),
  /** Logical interfaces whose failure fails this instance (default: every interface the pair uses). */
  track_interfaces: z.array(Logical).optional(),
})

export const PairVrrpSchema = VrrpDefaultsSchema.extend({
  sync_group: Name.optional(),
  nopreempt: z.boolean().optional(),
  instances: z.array(InstanceSchema).min(1, { error: 'a pair needs at least one VRRP instance' }),
})

export const PairSyncSchema = ConntrackSyncDefaultsSchema.extend({
  interface: Logical,
})

export const RouteSchema = z.strictObject({
  to: AddrOrNet,
  via: IpAddr,
  interface: Logical.optional(),
})

const DnatSchema = z.strictObject({
  in: Logical,
  proto: Proto.optional(),
  dst: IpAddr,
  dport: Port.optional(),
  to: IpAddr,
  to_port: Port.optional(),
})

const SnatSchema = z.strictObject({
  out: Logical,
  proto: Proto.optional(),
  src: AddrOrNet,
  dst: AddrOrNet.optional(),
  dport: Port.optional(),
  to: IpAddr,
})

export const NatSchema = z.strictObject({
  dnat: z.array(DnatSchema).optional(),
  snat: z.array(SnatSchema).optional(),
})

const AllowSchema = z.strictObject({
  in: Logical.optional(),
  out: Logical.optional(),
  proto: Proto.optional(),
  src: AddrOrNet.optional(),
  dst: AddrOrNet.optional(),
  sport: Port.optional(),
  dport: Port.optional(),
})

export const FilterSchema = z.strictObject({
  forward_policy: z.enum(['drop', 'accept'], { error: 'expected drop or accept' }).optional(),
  allow: z.array(AllowSchema).optional(),
  /** LOG prefix for dropped forwarded packets; false for no logging. */
  log_dropped: z.union([LogPrefix, z.literal(false)], { error: 'expected a log prefix or false' }).optional(),
})

const CheckSchema = z.strictObject({
  type: z.enum(['tcp', 'http', 'smtp', 'misc'], { error: 'expected one of tcp, http, smtp, misc' }),
  connect_timeout: int(1, 3600, 'seconds 1..3600').optional(),
  retry: int(0, 100, 'a count 0..100').optional(),
  delay_before_retry: int(0, 3600, 'seconds 0..3600').optional(),
  connect_port: Port.optional(),
  url: z.strictObject({ path: UrlPath, status_code: int(100, 599, 'an HTTP status 100..599').optional() }).optional(),
  misc_path: CheckCommand.optional(),
})

const RealServerSchema = z.strictObject({
  address: IpAddr,
  port: Port,
  weight: int(0, 65535, 'a weight 0..65535').optional(),
  inhibit_on_failure: z.boolean().optional(),
  check: CheckSchema.optional(),
})

export const VirtualServerSchema = z.strictObject({
  name: Name,
  vips: z.array(z.strictObject({ address: IpAddr, port: Port })).min(1),
  protocol: z.enum(['tcp', 'udp'], { error: 'expected tcp or udp' }),
  lb_algo: z.enum(['rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'sh', 'dh', 'sed', 'nq'], { error: 'expected one of rr, wrr, lc, wlc, lblc, lblcr, sh, dh, sed, nq' }),
  lb_kind: z.enum(['NAT', 'DR', 'TUN'], { error: 'expected NAT, DR or TUN' }),
  delay_loop: int(1, 3600, 'seconds 1..3600').optional(),
  persistence_timeout: int(1, 86400, 'seconds 1..86400').optional(),
  real_servers: z.array(RealServerSchema).min(1, { error: 'a virtual server needs at least one real server' }),
})

/** address6: the probe's IPv6 address on a dual-stack segment (witness flows of both families). */
const ProbeClient = z.strictObject({ address: Ipv4, address6: Ipv6.optional(), segment: Logical })
const ProbeServer = z.strictObject({ address: Ipv4, address6: Ipv6.optional(), port: Port, segment: Logical })
export const DrillSchema = z.strictObject({
  probes: z.strictObject({ client: ProbeClient, server: ProbeServer }).optional(),
  /** Worst data-plane gap accepted, per mode, in ms (defaults documented in the drill package). */
  max_gap_ms: z.strictObject({
    graceful: int(1, 600000, 'ms').optional(),
    crash: int(1, 600000, 'ms').optional(),
    link: int(1, 600000, 'ms').optional(),
    partition: int(1, 600000, 'ms').optional(),
  }).optional(),
})

const Sysctls = z.record(
  z.string().regex(/^[a-z0-9_]+(\.[a-z0-9_-]+)+$/, { error: 'expected a sysctl key such as net.ipv4.ip_forward' }),
  z.union([z.number().int(), z.string().regex(/^[A-Za-z0-9 _.:-]{1,64}$/, { error: 'expected a plain sysctl value' })]),
)

export const PairSchema = z.strictObject({
  name: Name,
  kind: z.enum(['firewall', 'loadbalancer'], { error: 'expected firewall or loadbalancer' }),
  profile: ProfileSchema.optional(),
  ssh: SshSchema.optional(),
  firewall: FirewallDefaultsSchema.optional(),
  nodes: z.array(NodeSchema).length(2, { error: 'a pair has exactly two nodes' }),
  vrrp: PairVrrpSchema,
  conntrack_sync: PairSyncSchema.optional(),
  routes: z.array(RouteSchema).optional(),
  nat: NatSchema.optional(),
  filter: FilterSchema.optional(),
  virtual_servers: z.array(VirtualServerSchema).optional(),
  drill: DrillSchema.optional(),
  sysctls: Sysctls.optional(),
})

export const PbrSchema = z.strictObject({
  interface: Logical,
  table: int(1, 252, 'a routing table id 1..252'),
  table_name: z.string().regex(/^[A-Za-z][A-Za-z0-9_-]{0,30}$/, { error: 'expected a table name: a letter, then up to 30 letters, digits, "_" or "-"' }),
  /** 0x1 in YAML is the integer 1; both spellings are accepted. */
  fwmark: z.union([int(1, 0xffffffff, 'a mark 1..0xffffffff'), Hex32], { error: 'expected a mark such as 0x1' }),
  gateway: Ipv4,
  /** The uplink's IPv6 gateway (the interface needs an IPv6 address) */
  gateway6: Ipv6.optional(),
})

export const HostSchema = z.strictObject({
  name: Name,
  address: NodeAddress,
  profile: ProfileSchema.optional(),
  ssh: SshSchema.optional(),
  firewall: FirewallDefaultsSchema.optional(),
  interfaces: InterfaceMap,
  addresses: AddressMap,
  routes: z.array(RouteSchema).optional(),
  pbr: z.array(PbrSchema).min(1),
  sysctls: Sysctls.optional(),
})

export const DefaultsSchema = z.strictObject({
  profile: ProfileSchema.optional(),
  ssh: SshSchema.optional(),
  vrrp: VrrpDefaultsSchema.optional(),
  conntrack_sync: ConntrackSyncDefaultsSchema.optional(),
  firewall: FirewallDefaultsSchema.optional(),
})

export const InventorySchema = z.strictObject({
  version: z.literal(1, { error: 'expected version: 1' }),
  site: Name,
  defaults: DefaultsSchema.optional(),
  pairs: z.array(PairSchema).optional(),
  hosts: z.array(HostSchema).optional(),
})

export type RawInventory = z.infer<typeof InventorySchema>
export type RawPair = z.infer<typeof PairSchema>
export type RawNode = z.infer<typeof NodeSchema>
export type RawHost = z.infer<typeof HostSchema>
export type RawSsh = z.infer<typeof SshSchema>
