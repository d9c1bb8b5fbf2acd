import { HafwError, sleep, throwIfAborted } from '@hafw/core'
import type { HostModel, PairModel } from '@hafw/inventory'
import type { Session } from '@hafw/transport'
import { judgeVrrp, openProbeLoop, recvPackets, type NodeProbe, type ProbeLoop, type ProbeOptions } from '@hafw/verify'
import { resyncLine } from './scripts.js'

/*
 * The health gate, after a node's services ran: every unit of the node active, exactly one
 * holder of each VRRP instance's VIPs across the pair (VIP ownership from `ip -o addr` is the
 * ground truth, not what keepalived believes: verify's judgeVrrp), conntrackd answering on
 * both nodes with sync messages arriving on both sides since the services ran, all that in two
 * samples in a row; and SSH reachable through a NEW connection (a lockout leaves the existing
 * connection alive: ESTABLISHED is accepted), opened once the swap got past every step on its
 * path (see swapScript) and awaited with the samples. "Since the services
 * ran": each counter's baseline is read (conntrackd -s alone) once the swap returned, before
 * the resync request, so the first full sample can already pass.
 */

export const SYNC_CONF = '/etc/conntrackd/conntrackd.conf'
/** Between two samples: one sample is a few ms of work on each node. */
export const SAMPLE_INTERVAL_MS = 100

/** "Pckts recv" per node: at the first sample (or since conntrackd restarted: it went down) and now. */
export type SyncWatch = Record<string, { base: number; last: number }>

/** Record node n's counter r: a first sight, or one lower than the last (a restart), is the new baseline. */
function observe(watch: SyncWatch, n: string, r: number): { base: number; last: number } {
  const w = watch[n]
  return (watch[n] = !w || r < w.last ? { base: r, last: r } : { base: w.base, last: r })
}

export interface SampleVerdict {
  problems: string[]
  /** who holds the VIPs (the whole sync group, else the first instance's) */
  master: string | null
  /** a condition that could not be checked */
  note?: string
}

/**
 * One sample of both nodes judged. Pure, apart from recording the sync counters in `watch`.
 * The changed node's units must all run; the peer is judged only through VRRP and sync (on a
 * fresh pair it runs nothing yet). `updated`: nodes on the new configuration; a node still on
 * the old one may lack VIPs this rollout adds.
 */
export function judgeSample(pair: PairModel, node: string, updated: readonly string[], probes: Record<string, NodeProbe>, watch: SyncWatch): SampleVerdict {
  const problems: string[] = []
  const names = pair.nodes.map((n) => n.name)
  const peer = names.find((n) => n !== node)!
  let note: string | undefined
  for (const [u, st] of Object.entries(probes[node]!.units)) if (st !== 'active') problems.push(`${node}: ${u} is ${st}`)
  if (pair.conntrack_sync) {
    const me = probes[node]!.conntrackd
    if (!me?.running) problems.push(`${node}: conntrackd does not answer (${me?.error ?? 'conntrackd -s'})`)
    else if (probes[peer]!.conntrackd?.running) {
      // both answer: messages must have arrived on both sides since the services ran
      for (const n of [node, peer]) {
        const r = recvPackets(probes[n]!.conntrackd!.stats!)
        if (r === null) {
          problems.push(`${n}: conntrackd -s reports no sync traffic counters`)
          continue
        }
        if (!(r > observe(watch, n, r).base)) problems.push(`${n}: no sync message received from its peer yet (${r} packets received)`)
      }
    } else note = `${peer}'s conntrackd is not running: sync link not checked`
  }
  const v = judgeVrrp(
    pair,
    names.map((n) => ({ name: n, addrs: probes[n]!.addrs, keepalived: probes[n]!.units['keepalived.service'], fault: probes[n]!.state?.role === 'fault' })),
    { stale: names.filter((n) => !updated.includes(n)) },
  )
  problems.push(...v.problems.map((p) => p.message))
  return { problems, master: v.active ?? v.instances[0]?.master ?? null, ...(note ? { note } : {}) }
}

export interface GateInput {
  pair: PairModel
  /** the node just changed */
  node: string
  /** nodes on the new configuration (this one and those done before it) */
  updated: string[]
  /** the pair's probe loops (gateLoops), kept across its gates */
  loops: ProbeLoops
  /** a brand-new connection to the node and its login (already under way, or opened now) */
  reconnect: () => Promise<void>
  timeoutMs: number
  signal: AbortSignal
  /** conntrackd (re)started on the node: its counters began at zero then */
  restarted?: boolean
  /** once the baselines are read, ask the peer for a resync (the loops' "resync" request, see gateLoops) */
  resync?: boolean
  onWait?: (why: string) => void
}

export interface GateResult {
  ok: boolean
  ms: number
  problems: string[]
  /** who holds the VIPs at the end */
  master: string | null
  /** samples taken */
  samples: number
  /** a condition that could not be checked */
  note?: string
}


/** What every gate needs besides its own sampler. */
export interface GateBase {
  node: string
  /** a brand-new connection to the node and its login (already under way, or opened now) */
  reconnect: () => Promise<void>
  timeoutMs: number
  signal: AbortSignal
  onWait?: (why: string) => void
}

/**
 * Take samples until one passes twice in a row, or the time is up; meanwhile a new SSH
 * connection to the node (a lockout shows as its failure). `prepare` runs before the first
 * sample, and the first sample follows it at once.
 */
async function gateLoop(g: GateBase, sample: () => Promise<SampleVerdict>, prepare?: () => Promise<void>): Promise<GateResult> {
  const t0 = Date.now()
  const ssh = g.reconnect().then(
    () => '',
    (e: Error) => `SSH: a new connection to ${g.node} fails: ${e.message}`,
  )
  let verdict: SampleVerdict = { problems: ['not sampled'], master: null }
  let okRuns = 0
  let samples = 0
  if (prepare) await prepare()
  for (;;) {
    throwIfAborted(g.signal)
    verdict = await sample()
    samples++
    okRuns = verdict.problems.length ? 0 : okRuns + 1
    if (okRuns >= 2) break
    if (Date.now() - t0 > g.timeoutMs) return { ok: false, ms: Date.now() - t0, problems: verdict.problems, master: verdict.master, samples }
    if (verdict.problems.length) g.onWait?.(verdict.problems.join('; '))
    await sleep(SAMPLE_INTERVAL_MS, g.signal)
  }
  const sshProblem = await ssh
  const base = { ms: Date.now() - t0, master: verdict.master, samples }
  if (sshProblem) return { ok: false, problems: [sshProblem], ...base }
  return { ok: true, problems: [], ...base, ...(verdict.note ? { note: verdict.note } : {}) }
}

/** What a node's gate samples read, and the shell lines its loop runs by name besides. */
export interface LoopSpec {
  o: ProbeOptions
  extra?: Record<string, string>
}

/**
 * The gates' probe loops (verify's openProbeLoop), one per node, opened on first use and kept
 * until close(): a pair's two gates sample both nodes, so a rollout opens one channel per node
 * for all its samples. A loop that failed is opened again at the next use.
 */
export class ProbeLoops {
  private readonly loops = new Map<string, Promise<ProbeLoop>>()
  constructor(
    private readonly sessions: Record<string, Session>,
    private readonly spec: (node: string) => LoopSpec,
  ) {}

  private async get(node: string): Promise<ProbeLoop> {
    let loop = this.loops.get(node)
    if (!loop || (await loop.catch(() => null))?.dead !== null) {
      const { o, extra } = this.spec(node)
      loop = openProbeLoop(this.sessions[node]!, o, extra)
      this.loops.set(node, loop)
    }
    return loop
  }

  /** Open the loops now (the first sample then does not wait for their channels); failures show at first use. */
  warm(nodes: readonly string[]): void {
    for (const n of nodes) void this.get(n).catch(() => undefined)
  }

  async probe(node: string, signal: AbortSignal): Promise<NodeProbe> {
    return (await this.get(node)).probe(signal)
  }

  async stats(node: string, signal: AbortSignal): Promise<NodeProbe> {
    return (await this.get(node)).stats(signal)
  }

  async run(node: string, name: string, signal: AbortSignal): Promise<void> {
    return (await this.get(node)).run(name, signal)
  }

  close(): void {
    for (const l of this.loops.values()) void l.then((x) => x.close(), () => undefined)
    this.loops.clear()
  }
}

/**
 * The probe loops of a pair's gates (a host's when `pair` is null): each node's units, VRRP
 * addresses and, with sync, conntrackd's counters over `conf(node)`; in a mode that can resync,
 * the request "resync", bounded on the node (ending the loop's channel would not end a
 * conntrackd that hangs).
 */
export function gateLoops(sessions: Record<string, Session>, pair: PairModel | null, units: Record<string, string[]>, conf: (node: string) => string | undefined): ProbeLoops {
  return new ProbeLoops(sessions, (n) => {
    if (!pair) return { o: { units: units[n] ?? [], brief: true, rules: true } }
    const c = conf(n) ?? SYNC_CONF
    return {
      o: { units: units[n] ?? [], brief: true, ...(pair.conntrack_sync ? { conntrackdConf: c } : {}) },
      ...(pair.conntrack_sync && pair.conntrack_sync.mode !== 'alarm' ? { extra: { resync: `timeout 10 ${resyncLine(c)}` } } : {}),
    }
  })
}

/** Probe every named node at once over its loop; errors become problems. */
async function probeAll(loops: ProbeLoops, names: string[], signal: AbortSignal): Promise<{ probes: Record<string, NodeProbe>; errors: string[] }> {
  const probes: Record<string, NodeProbe> = {}
  const errors: string[] = []
  await Promise.all(
    names.map((n) =>
      loops.probe(n, signal).then(
        (p) => void (probes[n] = p),
        (e: Error) => void errors.push(`${n}: ${e.message}`),
      ),
    ),
  )
  return { probes, errors }
}

/** Sample both nodes of the pair until every condition holds twice in a row, or the time is up. */
export function healthGate(g: GateInput): Promise<GateResult> {
  const names = g.pair.nodes.map((n) => n.name)
  // A restarted conntrackd counts from zero: anything received proves the link into it. Every
  // other baseline (the peer's always) is read now, before the resync request reaches it; one
  // that cannot be read is the first sample's, as a counter seen for the first time.
  const watch: SyncWatch = g.restarted ? { [g.node]: { base: 0, last: 0 } } : {}
  let master: string | null = null
  const sample = async (): Promise<SampleVerdict> => {
    const { probes, errors } = await probeAll(g.loops, names, g.signal)
    const v = errors.length ? { problems: errors, master } : judgeSample(g.pair, g.node, g.updated, probes, watch)
    master = v.master
    return v
  }
  const baseline = async (n: string) => {
    const p = await g.loops.stats(n, g.signal).catch(() => null)
    const r = p?.conntrackd?.running ? recvPackets(p.conntrackd.stats!) : null
    if (r !== null) observe(watch, n, r)
  }
  const prepare = async () => {
    if (!g.pair.conntrack_sync) return
    await Promise.all(names.filter((n) => !watch[n]).map(baseline))
    // Sync messages cross the link now, not with the next ALIVE (about 1 s), and the restarted
    // daemon's empty external cache is filled again. A failure shows in the samples.
    if (g.resync) await g.loops.run(g.node, 'resync', g.signal).catch(() => undefined)
  }
  return gateLoop(g, sample, prepare)
}

/** A policy-routing host's fwmark rules as `ip -4 rule show` prints them (table by name or number). */
export function hostRuleProblems(host: Pick<HostModel, 'name' | 'pbr'>, rules: readonly string[]): string[] {
  return host.pbr
    .filter((r) => !rules.some((l) => new RegExp(`\\bfwmark ${r.fwmark}(/0x[0-9a-f]+)? lookup (${r.table}|${r.table_name})\\b`).test(l.trim())))
    .map((r) => `${host.name}: no policy rule "fwmark ${r.fwmark} lookup ${r.table_name}" (ip rule)`)
}

/** One sample of a host judged. Pure. */
export function judgeHostSample(host: Pick<HostModel, 'name' | 'pbr'>, p: NodeProbe): SampleVerdict {
  const problems = Object.entries(p.units).flatMap(([u, st]) => (st === 'active' ? [] : [`${host.name}: ${u} is ${st}`]))
  return { problems: [...problems, ...hostRuleProblems(host, p.rules ?? [])], master: null }
}

export interface HostGateInput extends GateBase {
  host: HostModel
  /** the host's probe loop (gateLoops with no pair) */
  loops: ProbeLoops
}

/** A single host (no VRRP, no sync): its units active and its fwmark rules in place, twice in a row; SSH through a new connection. */
export function hostGate(g: HostGateInput): Promise<GateResult> {
  const sample = async (): Promise<SampleVerdict> => {
    const { probes, errors } = await probeAll(g.loops, [g.node], g.signal)
    return errors.length ? { problems: errors, master: null } : judgeHostSample(g.host, probes[g.node]!)
  }
  return gateLoop(g, sample)
}

export function gateError(node: string, r: GateResult): HafwError {
  return new HafwError(`${node}: health gate failed after ${(r.ms / 1000).toFixed(1)} s: ${r.problems.join('; ')}`)
}
