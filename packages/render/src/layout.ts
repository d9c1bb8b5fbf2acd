import type { Profile } from '@hafw/inventory'

/*
 * Where each file lives on a node, per profile. Scripts hafw owns live in /usr/local/sbin (root
 * owned, so keepalived's enable_script_security accepts them); units in /etc/systemd/system.
 */

export interface Layout {
  profile: Profile
  keepalived: string
  conntrackd: string
  sysctl: string
  modules: string
  /** rt_tables entry: a drop-in (debian) or the whole file as seed 000 edits it (rhel) */
  rtTables: string
  rtTablesWhole: boolean
  /** rhel: rule-IF / route-IF files make routes and rules survive reboot */
  networkScripts: string | null
  /** debian: a unit runs hafw-routing at boot */
  routingUnit: boolean
  iptablesFull: string
  ip6tablesFull: string
  nftablesFull: string
  units: string
  /** systemd knows the "+" command prefix (231 and later; CentOS 7 runs 219) */
  execPlus: boolean
}

export const SCRIPTS = {
  notify: '/usr/local/sbin/hafw-notify',
  firewall: '/usr/local/sbin/hafw-firewall',
  routing: '/usr/local/sbin/hafw-routing',
} as const

/** What hafw-notify writes (documented in packages/render/README.md). */
export const RUNTIME = {
  runDir: '/run/hafw',
  log: '/var/log/hafw/notify.log',
  history: '/var/log/hafw/transitions.jsonl',
  conntrackdBin: '/usr/sbin/conntrackd',
  conntrackdLock: '/var/lock/conntrack.lock',
  conntrackdSocket: '/var/run/conntrackd.ctl',
} as const

/** `ownership: chains`: hafw's rules live in files of their own, never in the host's ruleset file. */
export const CHAINS_FILES = { iptables: '/etc/hafw/iptables.rules', ip6tables: '/etc/hafw/ip6tables.rules', nftables: '/etc/hafw/hafw.nft' } as const

const common = {
  keepalived: '/etc/keepalived/keepalived.conf',
  conntrackd: '/etc/conntrackd/conntrackd.conf',
  sysctl: '/etc/sysctl.d/90-hafw.conf',
  modules: '/etc/modules-load.d/hafw.conf',
  units: '/etc/systemd/system',
}

export const LAYOUTS: Record<Profile, Layout> = {
  debian: {
    ...common,
    profile: 'debian',
    rtTables: '/etc/iproute2/rt_tables.d/hafw.conf',
    rtTablesWhole: false,
    networkScripts: null,
    routingUnit: true,
    execPlus: true,
    iptablesFull: '/etc/iptables/rules.v4',
    ip6tablesFull: '/etc/iptables/rules.v6',
    nftablesFull: '/etc/nftables.conf',
  },
  rhel: {
    ...common,
    profile: 'rhel',
    rtTables: '/etc/iproute2/rt_tables',
    rtTablesWhole: true,
    networkScripts: '/etc/sysconfig/network-scripts',
    routingUnit: false,
    execPlus: false,
    iptablesFull: '/etc/sysconfig/iptables',
    ip6tablesFull: '/etc/sysconfig/ip6tables',
    nftablesFull: '/etc/sysconfig/nftables.conf',
  },
}
