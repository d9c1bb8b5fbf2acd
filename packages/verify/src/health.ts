import type { PairModel } from '@hafw/inventory'
import type { NodeProbe } from './collect.js'
import type { ConntrackdStats } from './stats.js'

/*
 * The pair's health from its nodes' probes. Pure. VIP ownership (`ip -o addr`, IPv4 and IPv6
 * VIPs alike, compared in canonical text) is the ground truth for who is MASTER, not what
 * keepalived or the state script believe: the active node is the one holding every VIP of the
 * sync group. Counters are judged between the first and the latest `conntrackd -s` sample of a
 * run, so a verify that polls for 10 s judges 10 s.
 */

export type Role = 'MASTER' | 'BACKUP' | 'FAULT' | 'STOPPED' | 'UNKNOWN'

export type ProblemKind =
  | 'unreachable'
  | 'split-brain'
  | 'no-master'
  | 'vip-wrong-node'
  | 'vip-missing'
  | 'vip-wrong-device'
  | 'keepalived-down'
  | 'conntrackd-down'
  | 'sync-link-down'
  | 'sync-link-silent'
  | 'sync-send-errors'
  | 'lost-messages'
  | 'malformed-messages'
  | 'transition-failed'
  | 'dump-failed'

export interface Problem {
  kind: ProblemKind
  node?: string
  instance?: string
  message: string
}

/** Problems that are facts about the past (a counter rose): polling longer does not clear them. */
export const HISTORICAL: ReadonlySet<ProblemKind> = new Set<ProblemKind>(['lost-messages', 'malformed-messages', 'sync-send-errors'])

/** A healthy FTFW link carries an ALIVE message about every second each way (measured: 1/s). */
export const SILENT_MS = 2500

/** One `conntrackd -s` sample and when it arrived (controller clock). */
export interface CtSample {
  t: number
  stats: ConntrackdStats
}

export interface NodeInput {
  name: string
  /** the latest full probe; absent when the node could not be reached */
  probe?: NodeProbe
  /** why the node could not be probed */
  error?: string
  /** first and latest conntrackd samples of the run */
  first?: CtSample
  last?: CtSample
}

export interface SyncHealth {
  /** conntrackd answered on its control socket */
  running: boolean
  /** link status from `conntrackd -s link` (RUNNING, DOWN) */
  link: string | null
  /** alive: sync messages arrived during the run; silent: none for SILENT_MS or longer */
  liveness: 'alive' | 'silent' | 'unknown'
  /** sync packets received during the run, and over how long */
  rxPackets: number | null
  windowMs: number
  lost: number | null
  malformed: number | null
  /** entries in conntrackd's caches now */
  internal: number | null
  external: number | null
}

export interface InstanceHealth {
  instance: string
  vips: { vip: string; holders: string[] }[]
  /** node -> role */
  roles: Record<string, Role>
  /** the one node holding its VIPs, else null */
  master: string | null
}

export interface PairHealth {
  active: string | null
  standby: string | null
  instances: InstanceHealth[]
  /** per node; null on pairs without conntrack sync */
  sync: Record<string, SyncHealth> | null
  problems: Problem[]
}

const sum = (xs: (number | undefined)[]): number | null => (xs.some((x) => x !== undefined) ? xs.reduce<number>((a, x) => a + (x ?? 0), 0) : null)
/** Sync packets received over all links (null: not reported). */
export const recvPackets = (s: ConntrackdStats) => sum(s.links.map((l) => l.packetsRecv))
const sendErrors = (s: ConntrackdStats) => sum(s.links.map((l) => l.errorsSend))
// "message tracking" and "sequence tracking" count the same losses in two places: take either.
const lostOf = (s: ConntrackdStats) => max(s.messages?.lost, s.network?.packetsLost)
const malformedOf = (s: ConntrackdStats) => max(s.messages?.malformed, s.network?.recvMalformed)
function max(a: number | undefined, b: number | undefined): number | null {
  return a === undefined && b === undefined ? null : Math.max(a ?? 0, b ?? 0)
}

/** What the VRRP judgement needs of one node that answered. */
export interface VrrpNode {
  name: string
  /** addresses of both families by device (`ip -o addr`, parseAddrs) */
  addrs: { device: string; ip: string }[]
  /** systemctl is-active keepalived.service */
  keepalived?: string
  /** hafw-notify's last transition was to FAULT */
  fault?: boolean
}

export interface VrrpJudgement {
  instances: InstanceHealth[]
  /** the node holding every VIP of the sync group, else null */
  active: string | null
  problems: Problem[]
}

/** Who holds each VIP of each instance. Pure. */
export function vipHolders(pair: PairModel, addrs: Record<string, readonly { ip: string }[]>): { instance: string; vips: { vip: string; holders: string[] }[] }[] {
  return pair.vrrp.instances.map((inst) => ({
    instance: inst.name,
    vips: inst.vips.map((c) => ({ vip: c.ip, holders: pair.nodes.filter((n) => addrs[n.name]?.some((a) => a.ip === c.ip)).map((n) => n.name) })),
  }))
}

/**
 * The pair's VRRP state from the nodes that answered: exactly one holder of each instance's
 * VIPs (all of them, on the instance's device), one node for the whole sync group, and with
 * preemption the higher-priority node when it runs. Pure. Used by verify/status and by
 * apply's health gate; `stale` nodes still run a previous configuration (a rollout in
 * progress): lacking VIPs that configuration does not have, or holding one on another
 * device, is not held against them.
 */
export function judgeVrrp(pair: PairModel, nodes: readonly VrrpNode[], opts: { stale?: readonly string[] } = {}): VrrpJudgement {
  const problems: Problem[] = []
  const byName = new Map(nodes.map((n) => [n.name, n]))
  const probed = pair.nodes.filter((n) => byName.has(n.name))
  const all = probed.length === pair.nodes.length
  const stale = new Set(opts.stale ?? [])
  const role = (node: string, holds: boolean): Role => {
    const p = byName.get(node)
    if (!p) return 'UNKNOWN'
    if (holds) return 'MASTER'
    if (p.keepalived !== 'active') return 'STOPPED'
    return p.fault ? 'FAULT' : 'BACKUP'
  }
  const held = vipHolders(pair, Object.fromEntries(nodes.map((n) => [n.name, n.addrs])))
  const instances: InstanceHealth[] = pair.vrrp.instances.map((inst, k) => {
    const vips = held[k]!.vips
    const holders = [...new Set(vips.flatMap((v) => v.holders))]
    const roles = Object.fromEntries(pair.nodes.map((n) => [n.name, role(n.name, holders.includes(n.name))]))
    const at = (node: string) => `${node} holds ${vips.filter((v) => v.holders.includes(node)).map((v) => v.vip).join(', ')}`
    if (holders.length > 1) {
      problems.push({ kind: 'split-brain', instance: inst.name, message: `${inst.name}: two MASTERs (split brain): ${holders.map(at).join('; ')}` })
    } else if (holders.length === 0 && all) {
      problems.push({ kind: 'no-master', instance: inst.name, message: `${inst.name}: no MASTER: no node holds ${vips.map((v) => v.vip).join(', ')}` })
    } else if (holders.length === 1 && !stale.has(holders[0]!)) {
      const lacking = vips.filter((v) => !v.holders.length).map((v) => v.vip)
      if (lacking.length) problems.push({ kind: 'vip-missing', node: holders[0], instance: inst.name, message: `${inst.name}: ${holders[0]} is MASTER but lacks ${lacking.join(', ')}` })
    }
    // A VIP on another device than the instance's interface does not answer where it should.
    for (const n of probed) {
      const dev = n.interfaces[inst.interface]?.device
      if (stale.has(n.name)) continue
      for (const a of byName.get(n.name)!.addrs) {
        if (dev && inst.vips.some((c) => c.ip === a.ip) && a.device !== dev) {
          problems.push({ kind: 'vip-wrong-device', node: n.name, instance: inst.name, message: `${inst.name}: ${n.name} holds ${a.ip} on ${a.device}, not on ${dev} (${inst.interface})` })
        }
      }
    }
    return { instance: inst.name, vips, roles, master: holders.length === 1 ? holders[0]! : null }
  })

  // Instances of one sync group move together: their VIPs on two nodes break every flow
  // that crosses both segments.
  const masters = [...new Set(instances.map((i) => i.master).filter((m): m is string => !!m))]
  const clean = instances.every((i) => i.master)
  if (masters.length > 1 && !problems.some((p) => p.kind === 'split-brain')) {
    problems.push({
      kind: 'vip-wrong-node',
      message: `sync group ${pair.vrrp.sync_group} is split: ${instances.filter((i) => i.master).map((i) => `${i.instance} on ${i.master}`).join(', ')}`,
    })
  }
  const active = clean && masters.length === 1 ? masters[0]! : null

  // With preemption the higher-priority node, when healthy, must hold the VIPs.
  if (active && all && !pair.vrrp.nopreempt) {
    const [a, b] = pair.nodes
    const preferred = a.priority === b.priority ? null : a.priority > b.priority ? a : b
    const p = preferred && byName.get(preferred.name)!
    if (preferred && preferred.name !== active && p!.keepalived === 'active' && !p!.fault) {
      problems.push({
        kind: 'vip-wrong-node',
        node: active,
        message: `the VIPs are on ${active}, but ${preferred.name} (priority ${preferred.priority}, preempting) runs keepalived and should hold them`,
      })
    }
  }
  return { instances, active, problems }
}

export function judgePair(pair: PairModel, nodes: NodeInput[], opts: { silentMs?: number } = {}): PairHealth {
  const silentMs = opts.silentMs ?? SILENT_MS
  const problems: Problem[] = []
  const byName = new Map(nodes.map((n) => [n.name, n]))
  const probed = pair.nodes.filter((n) => byName.get(n.name)?.probe)
  for (const n of pair.nodes) {
    const i = byName.get(n.name)
    if (!i?.probe) problems.push({ kind: 'unreachable', node: n.name, message: `${n.name}: ${i?.error ?? 'not probed'}` })
  }
  const vrrp = judgeVrrp(
    pair,
    probed.map((n) => {
      const p = byName.get(n.name)!.probe!
      return { name: n.name, addrs: p.addrs, keepalived: p.units['keepalived.service'], fault: p.state?.role === 'fault' }
    }),
  )
  problems.push(...vrrp.problems)
  const { instances, active } = vrrp
  const standby = active ? pair.nodes.find((n) => n.name !== active)!.name : null

  for (const n of probed) {
    const p = byName.get(n.name)!.probe!
    const ka = p.units['keepalived.service']
    if (ka !== 'active') problems.push({ kind: 'keepalived-down', node: n.name, message: `${n.name}: keepalived.service is ${ka ?? 'unknown'}: ${n.name === active ? 'the active node' : active ? 'no standby to fail over to' : 'this node takes no part in VRRP'}` })
    if (p.state && p.state.ok === false && p.state.phase === 'done') {
      const failed = (p.state.steps ?? []).filter((s) => s.exit !== 0).map((s) => `${s.step} (exit ${s.exit})`)
      problems.push({ kind: 'transition-failed', node: n.name, message: `${n.name}: its last transition to ${p.state.role} had failed steps: ${failed.join(', ') || 'see /var/log/hafw/notify.log'}` })
    }
  }

  let sync: Record<string, SyncHealth> | null = null
  if (pair.conntrack_sync) {
    sync = {}
    for (const n of probed) {
      const i = byName.get(n.name)!
      const ct = i.probe!.conntrackd
      const h: SyncHealth = { running: !!ct?.running, link: null, liveness: 'unknown', rxPackets: null, windowMs: 0, lost: null, malformed: null, internal: null, external: null }
      sync[n.name] = h
      if (!ct?.running) {
        const unit = i.probe!.units['conntrackd.service']
        problems.push({ kind: 'conntrackd-down', node: n.name, message: `${n.name}: conntrackd is not running (conntrackd.service ${unit ?? 'unknown'}; ${ct?.error ?? 'no answer'})` })
        continue
      }
      const last = i.last?.stats ?? ct.stats!
      const first = i.first?.stats ?? last
      h.internal = last.internal?.active ?? null
      h.external = last.external?.active ?? null
      h.lost = lostOf(last)
      h.malformed = malformedOf(last)
      h.link = last.links.find((l) => l.status)?.status ?? null
      const down = last.links.filter((l) => l.status && l.status !== 'RUNNING')
      if (down.length) problems.push({ kind: 'sync-link-down', node: n.name, message: `${n.name}: sync link ${down.map((l) => `${l.device} is ${l.status}`).join(', ')}` })
      h.windowMs = i.first && i.last ? i.last.t - i.first.t : 0
      const r0 = recvPackets(first)
      const r1 = recvPackets(last)
      if (r0 !== null && r1 !== null) {
        // a counter that went down: conntrackd restarted during the run, nothing to conclude
        h.rxPackets = r1 >= r0 ? r1 - r0 : null
        if (r1 > r0) h.liveness = 'alive'
        else if (r1 === r0 && h.windowMs >= silentMs && pair.conntrack_sync.mode === 'ftfw') {
          h.liveness = 'silent'
          problems.push({ kind: 'sync-link-silent', node: n.name, message: `${n.name}: no sync message received from its peer in ${(h.windowMs / 1000).toFixed(1)} s (FTFW sends one a second)` })
        }
      }
      const rose = (what: (s: ConntrackdStats) => number | null, kind: ProblemKind, label: string) => {
        const a = what(first)
        const b = what(last)
        if (a !== null && b !== null && b > a) problems.push({ kind, node: n.name, message: `${n.name}: ${b - a} ${label} during the check (counter ${a} -> ${b})` })
      }
      rose(lostOf, 'lost-messages', 'sync messages lost')
      rose(malformedOf, 'malformed-messages', 'malformed sync messages')
      rose(sendErrors, 'sync-send-errors', 'sync send errors')
    }
  }
  return { active, standby, instances, sync, problems }
}

/** node -> instance -> role, for tables and JSON. */
export function rolesByNode(h: PairHealth): Record<string, Record<string, Role>> {
  const out: Record<string, Record<string, Role>> = {}
  for (const i of h.instances) for (const [node, r] of Object.entries(i.roles)) (out[node] ??= {})[i.instance] = r
  return out
}
