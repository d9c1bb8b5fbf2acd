import { readlink } from 'node:fs/promises'
import { exec, HafwError, type ExecOptions, type ExecResult } from '@hafw/core'
import { alive, rssByPidNs } from './host.js'
import { labSites, readState, type LabState } from './state.js'

export interface LabHostStatus {
  name: string
  pair?: string
  netns: string
  running: boolean
  /** systemd-nspawn and the container's PID 1 */
  pid?: number
  initPid?: number
  /** sum of RSS over the container's processes */
  rssKiB?: number
  bootMs?: number
  mgmt: { device: string; address: string }
  hostKey?: string
  interfaces: { logical: string; device: string; address?: string; address6?: string; segment: string }[]
}

/** A probe host: a bare network namespace on one segment with a TCP+UDP echo responder. */
export interface LabProbe {
  name: string
  role: 'client' | 'server'
  netns: string
  /** "192.168.10.100/24" */
  address: string
  /** "192.168.10.100" */
  ip: string
  gateway?: string
  /** "fd00:10::100/64": on a segment with IPv6 (dual stack) */
  address6?: string
  /** "fd00:10::100" (canonical text, as conntrack and ip print it) */
  ip6?: string
  /** IPv6 default route: the pair's IPv6 VIP on the segment */
  gateway6?: string
  pair: string
  /** the pair's logical interface the probe's segment is on, e.g. "outside" */
  segment: string
  subnet: string
  /** "fd00:10::/64" */
  subnet6?: string
  ports: number[]
  pid?: number
  running: boolean
}

export interface LabStatus {
  site: string
  inventory: string
  /** up: every host and probe runs; degraded: some stopped; starting/failed: as `lab up` left it */
  state: 'up' | 'degraded' | 'starting' | 'failed'
  created: string
  mgmtSubnet: string
  rootPort: string
  overlay: string
  bridges: { name: string; segment: string }[]
  hosts: LabHostStatus[]
  probes: LabProbe[]
}

async function probesOf(s: LabState): Promise<LabProbe[]> {
  return Promise.all(
    s.probes.map(async (p) => ({
      name: p.name,
      role: p.role,
      netns: p.netns,
      address: p.address,
      ip: p.address.split('/')[0]!,
      ...(p.gateway ? { gateway: p.gateway } : {}),
      ...(p.address6 ? { address6: p.address6, ip6: p.address6.split('/')[0]! } : {}),
      ...(p.address6 && p.gateway6 ? { gateway6: p.gateway6 } : {}),
      pair: p.pair,
      segment: p.segment,
      subnet: p.subnet,
      ...(p.subnet6 ? { subnet6: p.subnet6 } : {}),
      ports: p.ports,
      ...(p.proc ? { pid: p.proc.pid } : {}),
      running: await alive(p.proc),
    })),
  )
}

async function statusOf(s: LabState, rss: Map<string, number>): Promise<LabStatus> {
  const hosts = await Promise.all(
    s.hosts.map(async (h): Promise<LabHostStatus> => {
      const running = (await alive(h.nspawn)) && (await alive(h.init))
      const ns = running && h.init ? await readlink(`/proc/${h.init.pid}/ns/pid`).catch(() => undefined) : undefined
      return {
        name: h.name,
        ...(h.pair ? { pair: h.pair } : {}),
        netns: h.netns,
        running,
        ...(h.nspawn ? { pid: h.nspawn.pid } : {}),
        ...(h.init ? { initPid: h.init.pid } : {}),
        ...(ns && rss.has(ns) ? { rssKiB: rss.get(ns)! } : {}),
        ...(h.bootMs !== undefined ? { bootMs: h.bootMs } : {}),
        mgmt: { device: h.mgmt.device, address: h.mgmt.address },
        ...(h.hostKey ? { hostKey: h.hostKey.fingerprint } : {}),
        interfaces: h.interfaces.map((i) => ({ logical: i.logical, device: i.device, ...(i.address ? { address: i.address } : {}), ...(i.address6 ? { address6: i.address6 } : {}), segment: i.segment })),
      }
    }),
  )
  const probes = await probesOf(s)
  const allUp = hosts.every((h) => h.running) && probes.every((p) => p.running)
  return {
    site: s.site,
    inventory: s.inventory,
    state: s.phase === 'up' ? (allUp ? 'up' : 'degraded') : s.phase,
    created: s.created,
    mgmtSubnet: s.mgmtSubnet,
    rootPort: s.rootPort,
    overlay: s.overlay,
    bridges: s.bridges,
    hosts,
    probes,
  }
}

/**
 * Every lab on this machine (or one site's), with liveness and memory per host. `memory: false`
 * skips the pass over every process of the machine (commands that only ask whether a lab runs).
 */
export async function labStatus(site?: string, o: { memory?: boolean } = {}): Promise<LabStatus[]> {
  const sites = site === undefined ? await labSites() : [site]
  const states = (await Promise.all(sites.map((s) => readState(s)))).filter((s): s is LabState => s !== null)
  const rss = states.length && o.memory !== false ? await rssByPidNs() : new Map<string, number>()
  return Promise.all(states.map((s) => statusOf(s, rss)))
}

async function requireState(site: string): Promise<LabState> {
  const s = await readState(site)
  if (!s) throw new HafwError(`site "${site}" has no lab; start one with \`hafw lab up FILE\``)
  return s
}

/** The probe hosts of a site's lab, for drills: namespace, address, segment, echo ports. */
export async function labProbes(site: string): Promise<LabProbe[]> {
  return probesOf(await requireState(site))
}

/** The site whose running lab has a host or probe of this name (names are unique per inventory). */
export async function findLabHost(name: string, site?: string): Promise<string> {
  const sites = site ? [site] : await labSites()
  const found: string[] = []
  for (const s of sites) {
    const st = await readState(s)
    if (st && (st.hosts.some((h) => h.name === name) || st.probes.some((p) => p.name === name))) found.push(s)
  }
  if (found.length === 1) return found[0]!
  if (!found.length) throw new HafwError(`no lab${site ? ` of site "${site}"` : ''} has a host named "${name}"${sites.length ? '' : ' (no lab is up)'}`)
  throw new HafwError(`host "${name}" exists in the labs of sites ${found.join(', ')}; name the site`)
}

/**
 * Run a program on a lab host without SSH: inside a node's namespaces (nsenter into its PID 1),
 * or in a probe's network namespace. For tests and drills.
 */
export async function labExec(site: string, name: string, argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const s = await requireState(site)
  const h = s.hosts.find((x) => x.name === name)
  if (h) {
    if (!h.init || !(await alive(h.init))) throw new HafwError(`lab host ${name} (site ${site}) is not running`)
    return exec('nsenter', ['-t', String(h.init.pid), '-a', '--', ...argv], opts)
  }
  const p = s.probes.find((x) => x.name === name)
  if (p) return exec('ip', ['netns', 'exec', p.netns, ...argv], opts)
  throw new HafwError(`the lab of site "${site}" has no host or probe "${name}"`)
}
