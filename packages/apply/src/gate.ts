import { HafwError, throwIfAborted } from '@hafw/core'
import type { PairModel } from '@hafw/inventory'
import { parseAddrs } from '@hafw/plan'
import { shellQuote as q, type Session } from '@hafw/transport'

/*
 * The health gate, after a node's services ran: every unit of the node active, exactly one
 * holder of each VRRP instance's VIPs across the pair (VIP ownership from `ip -o addr` is the
 * ground truth, not what keepalived believes), conntrackd answering on both nodes with its
 * sync link receiving, and SSH reachable through a NEW connection (a lockout leaves the
 * existing connection alive: ESTABLISHED is accepted).
 */

export interface Sample {
  units: Record<string, string>
  ips: { device: string; ip: string }[]
  /** conntrackd -s answered */
  conntrackd: boolean | null
  /** sync messages received / sent so far (null: no sync, or not reported) */
  syncRecv: number | null
  syncSent: number | null
}

const SYNC_CONF = '/etc/conntrackd/conntrackd.conf'

export function sampleScript(units: readonly string[], sync: boolean): string {
  return [
    'PATH=/usr/sbin:/usr/bin:/sbin:/bin',
    ...units.map((u) => `printf '@@unit %s %s\\n' ${q(u)} "$(systemctl is-active ${q(u)} 2>/dev/null)"`),
    "echo '@@addr'",
    'ip -o -4 addr show',
    ...(sync ? ["echo '@@ct'", `timeout 5 conntrackd -C ${SYNC_CONF} -s 2>&1 && echo '@@ct-ok'`] : []),
    "echo '@@end'",
  ].join('\n') + '\n'
}

/** Parse what sampleScript printed. Pure. */
export function parseSample(out: string): Sample {
  const units: Record<string, string> = {}
  for (const m of out.matchAll(/^@@unit (\S+) (\S*)$/gm)) units[m[1]!] = m[2] || 'unknown'
  const addr = /@@addr\n([\s\S]*?)(?=^@@)/m.exec(out)?.[1] ?? ''
  const ct = /@@ct\n([\s\S]*?)(?=^@@(?:ct-ok|end))/m.exec(out)?.[1]
  // conntrackd -s: "UDP traffic (active device=ens5):" then "... Pckts sent ... Pckts recv"
  const sum = (re: RegExp) => (ct ? [...ct.matchAll(re)].reduce((a, m) => a + Number(m[1]), 0) : 0)
  const has = ct !== undefined && /Pckts recv/.test(ct)
  return {
    units,
    ips: parseAddrs(addr),
    conntrackd: ct === undefined ? null : /^@@ct-ok$/m.test(out),
    syncRecv: has ? sum(/(\d+)\s+Pckts recv/g) : null,
    syncSent: has ? sum(/(\d+)\s+Pckts sent/g) : null,
  }
}

export interface VrrpView {
  instance: string
  /** nodes holding at least one of the instance's VIPs */
  holders: string[]
  /** holders that lack some of the VIPs */
  partial: string[]
}

/** Who holds each instance's VIPs. Pure. */
export function vrrpView(pair: PairModel, ips: Record<string, { device: string; ip: string }[]>): VrrpView[] {
  return pair.vrrp.instances.map((inst) => {
    const want = inst.vips.map((v) => v.ip)
    const holders: string[] = []
    const partial: string[] = []
    for (const n of pair.nodes) {
      const have = new Set((ips[n.name] ?? []).map((a) => a.ip))
      const k = want.filter((ip) => have.has(ip)).length
      if (k > 0) holders.push(n.name)
      if (k > 0 && k < want.length) partial.push(n.name)
    }
    return { instance: inst.name, holders, partial }
  })
}

/**
 * The node that should hold the VIPs once VRRP settled: with preemption and distinct
 * priorities the highest-priority node running keepalived; otherwise whoever holds them.
 */
export function expectedMaster(pair: PairModel, running: string[]): string | null {
  if (pair.vrrp.nopreempt) return null
  const cands = pair.nodes.filter((n) => running.includes(n.name)).sort((a, b) => b.priority - a.priority)
  if (cands.length >= 2 && cands[0]!.priority === cands[1]!.priority) return null
  return cands[0]?.name ?? null
}

/**
 * Problems with the pair's VRRP state; empty when exactly one node holds every instance. Pure.
 * `updated`: nodes running the new configuration; a node still on the old one may lack VIPs
 * this rollout adds.
 */
export function vrrpProblems(pair: PairModel, ips: Record<string, { device: string; ip: string }[]>, running: string[], updated: string[] = pair.nodes.map((n) => n.name)): string[] {
  const out: string[] = []
  const want = expectedMaster(pair, running)
  for (const v of vrrpView(pair, ips)) {
    if (v.holders.length === 0) out.push(`${v.instance}: no node holds its VIPs`)
    else if (v.holders.length > 1) out.push(`${v.instance}: ${v.holders.join(' and ')} both hold VIPs (split brain)`)
    else if (v.partial.some((n) => updated.includes(n))) out.push(`${v.instance}: ${v.partial[0]} holds only some of its VIPs`)
    else if (want && v.holders[0] !== want) out.push(`${v.instance}: held by ${v.holders[0]}, ${want} (higher priority, preempting) has not taken over yet`)
  }
  const holders = new Set(vrrpView(pair, ips).flatMap((v) => v.holders))
  // instances of one sync group move together
  if (pair.vrrp.instances.length > 1 && holders.size > 1 && !out.length) out.push(`the sync group ${pair.vrrp.sync_group} is split across ${[...holders].join(' and ')}`)
  return out
}

export interface GateInput {
  pair: PairModel
  /** the node just changed */
  node: string
  /** nodes on the new configuration (this one and those done before it) */
  updated: string[]
  sessions: Record<string, Session>
  units: Record<string, string[]>
  /** open a brand-new connection to the node, run `true`, close */
  reconnect: () => Promise<void>
  timeoutMs: number
  signal: AbortSignal
  onWait?: (why: string) => void
}

export interface GateResult {
  ok: boolean
  ms: number
  problems: string[]
  /** who holds the VIPs at the end */
  master: string | null
  /** a condition that could not be checked */
  note?: string
}

export const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((res, rej) => {
    const onAbort = () => (clearTimeout(t), rej(signal.reason))
    const t = setTimeout(() => (signal.removeEventListener('abort', onAbort), res()), ms)
    signal.addEventListener('abort', onAbort, { once: true })
  })

/** Sample both nodes until every condition holds twice in a row, or the time is up. */
export async function healthGate(g: GateInput): Promise<GateResult> {
  const t0 = Date.now()
  const sync = !!g.pair.conntrack_sync
  const names = g.pair.nodes.map((n) => n.name)
  let first: Record<string, Sample> | undefined
  let okRuns = 0
  let problems: string[] = ['not sampled']
  let master: string | null = null
  let syncSkipped = ''
  for (;;) {
    throwIfAborted(g.signal)
    const samples: Record<string, Sample> = {}
    problems = []
    await Promise.all(
      names.map(async (n) => {
        try {
          const r = await g.sessions[n]!.exec('sh -s', { input: sampleScript(g.units[n] ?? [], sync), timeoutMs: 15_000, signal: g.signal })
          samples[n] = parseSample(r.stdout)
        } catch (e) {
          problems.push(`${n}: ${(e as Error).message}`)
        }
      }),
    )
    if (!problems.length) {
      first ??= samples
      const peer = names.find((n) => n !== g.node)!
      // The changed node's units must all run. The peer is judged only on what it ran before:
      // on a fresh pair it has nothing yet.
      for (const [u, st] of Object.entries(samples[g.node]!.units)) if (st !== 'active') problems.push(`${g.node}: ${u} is ${st}`)
      if (sync) {
        const me = samples[g.node]!
        const other = samples[peer]!
        if (!me.conntrackd) problems.push(`${g.node}: conntrackd does not answer (conntrackd -s)`)
        else if (other.conntrackd) {
          // both answer: messages must flow both ways while the gate watches
          for (const n of [g.node, peer]) {
            const s = samples[n]!
            if (s.syncRecv === null) problems.push(`${n}: conntrackd -s reports no sync traffic counters`)
            else if (!(s.syncRecv > (first[n]?.syncRecv ?? 0))) problems.push(`${n}: no sync message received from its peer yet (${s.syncRecv} packets received)`)
          }
        } else syncSkipped = `${peer}'s conntrackd is not running: sync link not checked`
      }
      const running = names.filter((n) => samples[n]!.units['keepalived.service'] === 'active')
      const ips = Object.fromEntries(names.map((n) => [n, samples[n]!.ips]))
      problems.push(...vrrpProblems(g.pair, ips, running, g.updated))
      master = vrrpView(g.pair, ips)[0]?.holders.length === 1 ? vrrpView(g.pair, ips)[0]!.holders[0]! : null
    }
    okRuns = problems.length ? 0 : okRuns + 1
    if (okRuns >= 2) break
    if (Date.now() - t0 > g.timeoutMs) return { ok: false, ms: Date.now() - t0, problems, master }
    if (problems.length) g.onWait?.(problems.join('; '))
    await sleep(200, g.signal)
  }
  try {
    await g.reconnect()
  } catch (e) {
    return { ok: false, ms: Date.now() - t0, problems: [`SSH: a new connection to ${g.node} fails: ${(e as Error).message}`], master }
  }
  return { ok: true, ms: Date.now() - t0, problems: [], master, ...(syncSkipped ? { note: syncSkipped } : {}) }
}

export function gateError(node: string, r: GateResult): HafwError {
  return new HafwError(`${node}: health gate failed after ${(r.ms / 1000).toFixed(1)} s: ${r.problems.join('; ')}`)
}
