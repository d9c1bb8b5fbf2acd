import { randomBytes } from 'node:crypto'
import { HafwError, InvalidInputError, reporter, sleep, throwIfAborted, type Operation, type SourceIssue } from '@hafw/core'
import { peerOf, type Model, type NodeModel, type PairModel } from '@hafw/inventory'
import { labProbes, type LabProbe } from '@hafw/lab'
import { fenceRefusal, lockedLines } from '@hafw/plan'
import { pairNodeView } from '@hafw/render/view'
import { shellQuote } from '@hafw/transport'
import { ADDR_COMMAND, conntrackListCommand, describe as describeVerify, parseAddrs, parseFlowsSync, SessionPool, verifyPairModel, type PairVerifyResult, type Problem } from '@hafw/verify'
import { countByFamily, judge, phaseFlows, type PhaseVerdictInput } from './analyze.js'
import { gapBound, masterDownMs, type GapBound } from './bounds.js'
import { measureOffset } from './clock.js'
import { armScript, disarmScript, planFault, SSH_DEVICE_SCRIPT, type FaultPlan } from './faults.js'
import { judgeLive, parseConntrackTcp, witnessFlows, type LiveFlow } from './live.js'
import { planWitnesses, ProbeWitness } from './probes.js'
import type { DrillMode, DrillResult, FlowSummary, PhaseResult, TimelineEvent } from './types.js'
import { readJournal, waitTransition, watchVips } from './watch.js'
import { familyOfHost, type WitnessResult } from './witness.js'

/*
 * `hafw drill`: fail a pair over on purpose while witness flows run through it, and measure.
 *
 *   preflight verify (refuse unless --force) -> clock offsets -> witnesses up (and replicated to
 *   the standby) -> arm the on-host restore timer -> watch the standby's VIPs -> trigger the fault
 *   -> VIPs, MASTER, commit on the new master -> watch for --duration -> settle the fault (crash:
 *   links up, conntrackd back) -> verify -> [failback: clear the fault (hand over on nopreempt
 *   pairs), the same measurements the other way] -> clear the fault -> verify -> witnesses' record
 *   cut into phases -> verdict.
 *
 * Whatever happens (an error, an abort), the fault is cleared in `finally`; the on-host timer
 * restores the node by itself if hafw cannot.
 */

export const MODES: readonly DrillMode[] = ['graceful', 'crash', 'link', 'partition']

/** What an operator chooses for a drill; shared by the operation's input and the job's. */
export interface DrillOptions {
  mode: DrillMode
  failback?: boolean
  /** witness flows from probe hosts (default 20); 0: the pair's own established flows are the witnesses */
  probeFlows?: number
  /** seconds each phase is watched after its trigger (default 6) */
  durationS?: number
  /** one witness message per flow every intervalMs (default 20) */
  intervalMs?: number
  /** drill even when the preflight verify fails */
  force?: boolean
  /** link / partition: the logical interface (or device) to act on */
  link?: string
  acceptNew?: boolean
  /** seconds verify may take to see the pair converged after each phase (default 30) */
  verifyDeadlineS?: number
}

export interface DrillInput extends DrillOptions {
  site: string
  /** the inventory file, absolute: relative SSH paths are resolved against it */
  source: string
  /** the pair as the model has it (SSH overlay applied); the VRRP password is not needed */
  pair: PairModel
}

export const DEFAULTS = { probeFlows: 20, durationS: 6, intervalMs: 20, verifyDeadlineS: 30 }

function checkInput(i: DrillInput): Required<Pick<DrillInput, 'probeFlows' | 'durationS' | 'intervalMs' | 'verifyDeadlineS'>> {
  const issues: SourceIssue[] = []
  const bad = (path: string, message: string) => issues.push({ file: '<drill input>', line: 0, column: 0, path, message })
  if (!MODES.includes(i?.mode)) bad('mode', `expected one of ${MODES.join(', ')}, found ${JSON.stringify(i?.mode)}`)
  if (!i?.pair || !Array.isArray(i.pair.nodes) || i.pair.nodes.length !== 2) bad('pair', 'expected the pair model with its two nodes')
  const int = (k: 'probeFlows' | 'durationS' | 'intervalMs' | 'verifyDeadlineS', min: number, max: number) => {
    const v = i?.[k]
    if (v !== undefined && !(Number.isInteger(v) && v >= min && v <= max)) bad(k, `expected an integer ${min}..${max}, found ${JSON.stringify(v)}`)
    return v ?? DEFAULTS[k]
  }
  const out = { probeFlows: int('probeFlows', 0, 5000), durationS: int('durationS', 2, 600), intervalMs: int('intervalMs', 5, 1000), verifyDeadlineS: int('verifyDeadlineS', 1, 600) }
  if (issues.length) throw new InvalidInputError(issues, 'invalid drill input')
  return out
}


const stamp = (out: string) => {
  const t = /^@@t (\d+)$/m.exec(out)?.[1]
  return t === undefined ? null : Number(t)
}
const tagged = (out: string, tag: string) => [...out.matchAll(new RegExp(`^@@${tag} (.*)$`, 'gm'))].map((m) => m[1]!)

/** Problems the fault itself causes while it is in place: not held against the pair. */
function tolerated(mode: DrillMode, faulted: string): (p: Problem) => boolean {
  return (p) => p.node === faulted && p.kind === 'keepalived-down' && (mode === 'graceful' || mode === 'crash')
}

interface RawPhase {
  name: 'failover' | 'failback'
  from: NodeModel
  to: NodeModel
  trigger: number
  timeline: TimelineEvent[]
  takeover: number | null
  commit: { entries: number | null; ms: number | null }
  bound: GapBound
  verify: { ok: boolean; detail: string } | null
  expectTakeover: boolean
  live?: { before: LiveFlow[]; after: LiveFlow[] }
}

export const runDrill: Operation<DrillInput, DrillResult> = async (input, progress, signal, lease) => {
  const o = checkInput(input)
  const startedAt = new Date()
  const pair = input.pair
  const mode = input.mode
  const model: Model = { version: 1, site: input.site, source: input.source, pairs: [pair], hosts: [] }
  const log = reporter(progress, pair.name)
  const pool = new SessionPool(model, { acceptNew: input.acceptNew ?? false, progress, signal })
  const sync = pair.conntrack_sync
  const ctConf = sync ? pairNodeView(model, pair, pair.nodes[0]).layout.conntrackd : null
  const vips = pair.vrrp.instances.flatMap((i) => i.vips.map((v) => v.ip))
  const notes: string[] = []
  const offsets: Record<string, number> = {}
  const exec = async (node: NodeModel, script: string, timeoutMs = 60_000) => {
    const r = await pool.run(node, (s) => s.exec('sh -s', { input: script + '\n', timeoutMs, signal }))
    for (const n of tagged(r.stdout, 'note')) notes.push(`${node.name}: ${n}`)
    for (const e of tagged(r.stdout, 'error')) notes.push(`${node.name}: ${e}`)
    return r
  }
  // What breaks a node (arming its restore timer, the fault, a hand-over) carries the pair's
  // fencing token under the node lock: a drill whose lock expired meanwhile is refused there.
  // Restoring never is: a fault put in place must always be cleared.
  const fence = lease?.fence[pair.name]
  const act = async (node: NodeModel, script: string) => {
    const r = await exec(node, [...lockedLines(fence), script].join('\n'))
    const refused = fenceRefusal(node.name, 'a drill step', r, fence)
    if (refused) throw refused
    return r
  }
  const toCtrl = (node: NodeModel, t: number) => Math.round(t - (offsets[node.name] ?? 0))
  const toNode = (node: NodeModel, t: number) => Math.round(t + (offsets[node.name] ?? 0))

  let witness: ProbeWitness | undefined
  const phases: RawPhase[] = []
  let final: { ok: boolean; detail: string } | null = null
  let witnessResult: WitnessResult | null = null
  let measured: 'probes' | 'live-flows' | 'none' = 'none'
  let unreplicated: string | null = null
  let fault: FaultPlan | undefined
  // an object: assigned in closures, read after them (no narrowing)
  const st: { fault: 'none' | 'injected' | 'settled' | 'cleared' } = { fault: 'none' }
  const timerUnit = `hafw-drill-restore-${randomBytes(3).toString('hex')}`
  const acct: { node: NodeModel; was: string }[] = []

  /**
   * Verify the pair; problems the fault causes while it is in place are not held against it.
   * With such a problem present verify polls to its deadline, so that deadline is kept short.
   */
  const verify = async (tolerate: ((p: Problem) => boolean) | null, deadlineS: number): Promise<{ ok: boolean; detail: string; r: PairVerifyResult; at: number }> => {
    const r = await verifyPairModel(model, pair, { deadline: tolerate ? Math.min(deadlineS, 6) : deadlineS, grace: 3, samples: 3 }, () => {}, signal, pool)
    const problems = r.problems.filter((p) => !tolerate?.(p))
    const expected = r.problems.filter((p) => tolerate?.(p)).map((p) => p.message)
    const ok = r.converged !== false && problems.length === 0
    const detail = [describeVerify(r), ...problems.map((p) => p.message), ...(expected.length ? [`expected while the fault is in place: ${expected.join(', ')}`] : [])]
    return { ok, detail: detail.join('; '), r, at: Date.now() }
  }

  const liveList = async (node: NodeModel) => parseConntrackTcp((await exec(node, `{ ${conntrackListCommand('-p tcp')}; } 2>/dev/null`)).stdout)

  /** One phase: watch `to`, pull the trigger, read what `to` says, watch the flows for the duration. */
  const phase = async (name: RawPhase['name'], from: NodeModel, to: NodeModel, pull: () => Promise<{ t: number; node: NodeModel; detail: string; extra?: TimelineEvent[] }>, expectTakeover: boolean): Promise<RawPhase> => {
    const bound = gapBound(pair, mode, to.name)
    const waitMs = masterDownMs(pair.vrrp.advert_int, to.priority) + 5000
    const live = measured !== 'live-flows' ? undefined : { before: witnessFlows(await liveList(from), await localAddrs(from), 1000), after: [] as LiveFlow[] }
    const watch = await watchVips(pool, to, vips, Math.max(waitMs, o.durationS * 1000), signal)
    let trig: Awaited<ReturnType<typeof pull>>
    try {
      trig = await pull()
    } catch (e) {
      watch.cancel()
      throw e
    }
    const trigger = toCtrl(trig.node, trig.t)
    log.info(`${name}: ${trig.detail} on ${trig.node.name}; watching ${to.name}`)
    const timeline: TimelineEvent[] = [...(trig.extra ?? []), { event: 'trigger', node: trig.node.name, t: trigger, detail: trig.detail }]
    const vipT = await Promise.race([watch.done, sleep(waitMs, signal).then(() => null)])
    watch.cancel()
    if (vipT === 'held') notes.push(`${name}: ${to.name} already held every VIP when the phase began`)
    const takeover = vipT === null || vipT === 'held' ? null : toCtrl(to, vipT)
    const commit: RawPhase['commit'] = { entries: null, ms: null }
    const since = toNode(to, trigger) - 1000
    if (takeover !== null) {
      const journal = await readJournal(pool, to, since, signal)
      const masters = journal.filter((j) => j.state === 'MASTER')
      if (masters.length) {
        timeline.push({ event: 'standby_master', node: to.name, t: toCtrl(to, masters[0]!.t), detail: `${masters.map((m) => m.instance).join(', ')} MASTER (sync group ${pair.vrrp.sync_group})` })
      }
      timeline.push({ event: 'vips_moved', node: to.name, t: takeover, detail: vips.join(', ') })
      const rec = await waitTransition(pool, to, 'primary', since, 15_000, signal)
      if (!masters.length && rec) timeline.push({ event: 'standby_master', node: to.name, t: toCtrl(to, rec.since_ms), detail: 'hafw-notify primary started (keepalived journal unreadable)' })
      if (rec?.commit) {
        const c = rec.commit
        commit.entries = c.external_entries
        commit.ms = c.duration_ms
        timeline.push({ event: 'commit_started', node: to.name, t: toCtrl(to, c.start_ms), detail: 'conntrackd -c' })
        timeline.push({
          event: 'commit_finished',
          node: to.name,
          t: toCtrl(to, c.end_ms),
          detail: `${c.external_entries ?? '?'} entries committed in ${c.duration_ms} ms (kernel table ${c.kernel_before ?? '?'} -> ${c.kernel_after ?? '?'})${c.exit ? `, exit ${c.exit}` : ''}`,
        })
      } else if (sync) notes.push(`${name}: ${to.name} recorded no commit in ${15} s (hafw-notify state.json)`)
      log.info(`${name}: ${to.name} holds the VIPs ${takeover - trigger} ms after the trigger${commit.ms !== null ? `; commit of ${commit.entries} entries took ${commit.ms} ms` : ''}`)
    } else {
      const journal = await readJournal(pool, to, since, signal).catch(() => [])
      const why = mode === 'partition' && !journal.some((j) => j.state === 'MASTER') && pair.vrrp.instances.length > 1
        ? `: it stayed BACKUP, no split brain (sync group ${pair.vrrp.sync_group}: its instances that still hear ${from.name} keep the whole group BACKUP)`
        : journal.length ? ` (keepalived: ${journal.map((j) => `${j.instance} ${j.state}`).join(', ')})` : ''
      notes.push(`${name}: ${to.name} did not take the VIPs over within ${(waitMs / 1000).toFixed(1)} s of the trigger${why}`)
      log.warn(`${name}: ${to.name} did not take over within ${(waitMs / 1000).toFixed(1)} s`)
    }
    await sleep(trigger + o.durationS * 1000 - Date.now(), signal)
    // TCP flows come back with their next retransmission, whose timer doubled while the path was
    // down: before the next phase, wait until no witness is silent (up to the bound + 15 s).
    const until = trigger + bound.ms + 15_000
    for (let st = await witness?.status(); st && Date.now() < until; st = await witness!.status()) {
      const waiting = st.lastEcho.filter((t, i) => !st!.reset[i] && st!.now - t > Math.max(500, 5 * o.intervalMs)).length
      if (!waiting) break
      log.debug(`${name}: ${waiting} witness flow(s) still stalled`)
      await sleep(250, signal)
    }
    if (live) live.after = await liveList(to)
    return { name, from, to, trigger, timeline, takeover, commit, bound, verify: null, expectTakeover, ...(live ? { live } : {}) }
  }

  const localAddrs = async (node: NodeModel) => new Set(parseAddrs((await exec(node, ADDR_COMMAND)).stdout).map((a) => a.ip))

  const clearFault = async (asTrigger: boolean): Promise<{ t: number; out: string }> => {
    const node = pair.nodes.find((n) => n.name === fault!.node)!
    const r = await exec(node, (asTrigger ? `printf '@@t %s\\n' "$(date +%s%3N)"\n` : '') + fault!.clear, 180_000)
    st.fault = 'cleared'
    await exec(node, disarmScript(timerUnit)).catch(() => undefined)
    return { t: stamp(r.stdout) ?? toNode(node, Date.now()), out: r.stdout }
  }

  try {
    // Preflight: the pair must be whole before it is broken on purpose.
    log.info(`preflight: verify ${pair.name}`)
    const pre = await verify(null, Math.min(o.verifyDeadlineS, 15))
    if (!pre.r.active) throw new HafwError(`pair ${pair.name}: no node holds all the VIPs, nothing to fail over (${pre.detail})`)
    if (!pre.ok) {
      if (!input.force) throw new HafwError(`pair ${pair.name}: preflight verify failed, not drilling a pair that is not whole (--force drills it anyway): ${pre.detail}`)
      notes.push(`preflight verify failed, drilled anyway (--force): ${pre.detail}`)
      log.warn(`preflight failed, drilling anyway (--force): ${pre.detail}`)
    }
    const active = pair.nodes.find((n) => n.name === pre.r.active)!
    const standby = peerOf(pair, active.name)
    for (const n of pair.nodes) {
      const c = await pool.run(n, (s) => measureOffset(s, 8, signal))
      offsets[n.name] = c.offsetMs
      log.debug(`${n.name}: clock offset ${c.offsetMs} ms (${c.samples} samples)`)
    }
    if (pair.kind === 'loadbalancer') {
      const ipvs = (await exec(active, 'test -e /proc/net/ip_vs && echo yes || echo no')).stdout.trim() === 'yes'
      notes.push(ipvs
        ? 'load-balancer pair: the drill exercises VRRP; flows through the IPVS virtual servers are not among the witnesses'
        : `load-balancer pair: IPVS is not available in ${active.name}'s kernel (no /proc/net/ip_vs), so the virtual servers were not exercised; the drill covers the VRRP part only`)
    }

    // Witnesses: probe hosts when the site has a lab with probes for this pair, else live flows.
    let probes: LabProbe[] = []
    if (o.probeFlows > 0) probes = await labProbes(input.site).catch(() => [])
    const plan = o.probeFlows > 0 ? planWitnesses(pair, probes, o.probeFlows) : { none: 'probe flows 0' }
    if ('client' in plan) {
      // bound to the client's addresses: the flows are looked up by source address below
      const bind = { bind: plan.client.ip, ...(plan.client.ip6 ? { bind6: plan.client.ip6 } : {}) }
      witness = new ProbeWitness(plan.client, { targets: plan.targets, intervalMs: o.intervalMs, durationMs: 6 * 3600_000, ...bind })
      const ready = await witness.ready(10_000)
      if (!ready) {
        const r = await witness.stop().catch(() => null)
        witness = undefined
        const dead = r?.flows.filter((f) => f.received === 0).map((f) => `#${f.id} ${f.proto} ${f.path} ${f.target}${f.error ? ` (${f.error})` : ''}`) ?? []
        throw new HafwError(`pair ${pair.name}: witness flows get no echo before the drill, so the path through the pair does not work now: ${dead.join(', ') || 'the witness did not start'}`)
      }
      measured = 'probes'
      notes.push(`witnesses: ${plan.describe}; one message every ${o.intervalMs} ms`)
      log.info(notes.at(-1)!)
      // The standby can only keep what reached its external cache before the trigger.
      if (sync && ctConf) {
        // TCP and UDP flows may share a port number, and so may an IPv4 and an IPv6 flow: key on
        // the client's address of the flow's family, the protocol and the port
        const srcOf = (host: string) => (familyOfHost(host) === 6 ? plan.client.ip6! : plan.client.ip)
        const keyOf = plan.targets.flatMap((t) => Array<string>(t.flows).fill(`${srcOf(t.host)}|${t.proto}`))
        const ports = new Set(ready.filter((f) => f.localPort !== undefined).map((f) => `${keyOf[f.id]}:${f.localPort}`))
        const t0 = Date.now()
        let seen = 0
        do {
          const ext = parseFlowsSync((await exec(standby, `conntrackd -C ${shellQuote(ctConf)} -e`)).stdout, { format: 'text' })
          // conntrackd prints addresses as the lab plan holds them (canonical IPv6)
          const key = (f: (typeof ext)[number]) => `${f.orig.src}|${f.proto}:${f.orig.sport}`
          seen = new Set(ext.map(key).filter((k) => ports.has(k))).size
          if (seen >= ports.size) break
          await sleep(250, signal)
        } while (Date.now() - t0 < 5000)
        notes.push(`witness flows in ${standby.name}'s external cache before the trigger: ${seen}/${ports.size}${seen >= ports.size ? ` (after ${((Date.now() - t0) / 1000).toFixed(1)} s)` : ' after 5 s: the others cannot be committed on failover'}`)
        if (seen < ports.size) unreplicated = `only ${seen} of ${ports.size} witness flows had reached ${standby.name}'s external cache before the trigger (state sync from ${active.name})`
      }
    } else {
      if (o.probeFlows > 0) notes.push(`no probe witnesses (${plan.none}); the established flows through ${active.name} are the witnesses`)
      measured = 'live-flows'
      // Accounting on the nodes for the drill: a flow with packets on the new master carries traffic there.
      for (const n of pair.nodes) {
        const r = await exec(n, 'cat /proc/sys/net/netfilter/nf_conntrack_acct 2>/dev/null; sysctl -qw net.netfilter.nf_conntrack_acct=1')
        acct.push({ node: n, was: r.stdout.trim() || '0' })
      }
    }

    // The fault, with the on-host restore armed first.
    const sshDevice = (await exec(active, SSH_DEVICE_SCRIPT)).stdout.trim() || null
    try {
      fault = planFault(pair, mode, active, ctConf, { ...(input.link ? { link: input.link } : {}), sshDevice })
    } catch (e) {
      throw new HafwError(`pair ${pair.name}: ${(e as Error).message}`)
    }
    notes.push(...fault.notes)
    const budgetS = 2 * (o.durationS + o.verifyDeadlineS) + 120
    await act(active, armScript(timerUnit, budgetS, fault.clear, `${active.name} after a ${mode} drill`))
    notes.push(`${active.name} armed ${timerUnit}.timer: it restores the node by itself ${budgetS} s after the trigger should hafw lose it`)
    throwIfAborted(signal)

    // Failover.
    const failover = await phase('failover', active, standby, async () => {
      st.fault = 'injected'
      const r = await act(active, fault!.inject)
      return { t: stamp(r.stdout) ?? toNode(active, Date.now()), node: active, detail: fault!.what }
    }, mode !== 'partition')
    phases.push(failover)
    if (fault.settle) {
      const r = await exec(active, fault.settle, 180_000)
      st.fault = 'settled'
      failover.timeline.push({ event: 'restored', node: active.name, t: Date.now(), detail: `links up${ctConf ? ', conntrackd running' : ''}; keepalived stays down until the fault is cleared${tagged(r.stdout, 'note').length ? ' (stale lock file removed)' : ''}` })
    }
    const v1 = await verify(tolerated(mode, active.name), o.verifyDeadlineS)
    failover.verify = { ok: v1.ok, detail: v1.detail }
    failover.timeline.push({ event: 'converged', node: v1.r.active ?? standby.name, t: v1.at, detail: `${v1.ok ? 'verify passed' : 'verify FAILED'}: ${v1.detail}` })
    log.info(`failover: verify ${v1.ok ? 'passed' : 'FAILED'}: ${v1.detail}`)

    // Failback: clear the fault (a preempting node takes its VIPs back), or hand over.
    const moved = failover.takeover !== null
    if (input.failback && !moved) notes.push('failback skipped: the failover did not move the VIPs')
    if (input.failback && moved) {
      const preempts = !pair.vrrp.nopreempt && active.priority > standby.priority
      const fb = await phase('failback', standby, active, async () => {
        if (preempts) {
          const c = await clearFault(true)
          return { t: c.t, node: active, detail: `fault cleared on ${active.name} (${fault!.mode === 'graceful' || fault!.mode === 'crash' ? 'keepalived started' : fault!.mode === 'link' ? `${fault!.devices.join(', ')} up` : 'VRRP rules removed'}); it preempts` }
        }
        const c = await clearFault(true)
        const back = await waitTransition(pool, active, 'backup', c.t - 1000, 15_000, signal)
        const r = await act(standby, `printf '@@t %s\\n' "$(date +%s%3N)"\nsystemctl restart keepalived.service`)
        return {
          t: stamp(r.stdout) ?? toNode(standby, Date.now()),
          node: standby,
          detail: `systemctl restart keepalived on ${standby.name} (hand-over: ${pair.vrrp.nopreempt ? 'nopreempt' : 'equal priorities'})`,
          extra: [{ event: 'fault_cleared', node: active.name, t: toCtrl(active, c.t), detail: back ? `${active.name} back as BACKUP` : `${active.name} cleared (no backup transition seen)` }],
        }
      }, true)
      phases.push(fb)
      const v2 = await verify(null, o.verifyDeadlineS)
      fb.verify = { ok: v2.ok, detail: v2.detail }
      fb.timeline.push({ event: 'converged', node: v2.r.active ?? active.name, t: v2.at, detail: `${v2.ok ? 'verify passed' : 'verify FAILED'}: ${v2.detail}` })
      log.info(`failback: verify ${v2.ok ? 'passed' : 'FAILED'}: ${v2.detail}`)
    }

    if (witness) {
      witnessResult = await witness.stop()
      witness = undefined
    }
    if (st.fault !== 'cleared') {
      await clearFault(false)
      const v3 = await verify(null, o.verifyDeadlineS)
      final = { ok: v3.ok, detail: v3.detail }
      notes.push(`fault cleared on ${active.name} after the drill${v3.r.active && v3.r.active !== failover.to.name && moved ? `: ${v3.r.active} took the VIPs back` : ''}`)
    }
  } finally {
    witness?.kill()
    if (fault && st.fault !== 'cleared' && st.fault !== 'none') {
      const node = pair.nodes.find((n) => n.name === fault!.node)!
      try {
        // not the drill's signal: an aborted drill must still restore the node
        await pool.run(node, (s) => s.exec('sh -s', { input: fault!.clear + '\n', timeoutMs: 180_000 }))
        await pool.run(node, (s) => s.exec('sh -s', { input: disarmScript(timerUnit) + '\n', timeoutMs: 30_000 }))
        log.info(`fault cleared on ${node.name}`)
      } catch (e) {
        log.error(`could not clear the fault on ${node.name} (${(e as Error).message}); its ${timerUnit}.timer restores it`)
      }
    } else if (fault && st.fault === 'none') {
      const node = pair.nodes.find((n) => n.name === fault!.node)!
      await pool.run(node, (s) => s.exec('sh -s', { input: disarmScript(timerUnit) + '\n', timeoutMs: 30_000 })).catch(() => undefined)
    }
    for (const a of acct) await pool.run(a.node, (s) => s.exec(`sysctl -qw net.netfilter.nf_conntrack_acct=${a.was === '1' ? 1 : 0}`, { timeoutMs: 30_000 })).catch(() => undefined)
    await pool.close()
  }

  // The record, phase by phase.
  const results: PhaseResult[] = []
  const verdictIn: PhaseVerdictInput[] = []
  const witnessEnd = witnessResult ? witnessResult.endedAt : Date.now()
  phases.forEach((p, k) => {
    const end = phases[k + 1]?.trigger ?? witnessEnd
    const result: PhaseResult = {
      phase: p.name,
      from: p.from.name,
      to: p.to.name,
      failover_ms: null,
      gap_ms: null,
      commit: p.commit,
      flows: { total: 0, kept: 0, reset: 0, lost_messages: 0 },
      per_flow: [],
      timeline: p.timeline,
      converged: p.verify ? p.verify.ok : null,
      bound_ms: p.bound.ms,
    }
    const master = p.timeline.find((e) => e.event === 'standby_master')?.t ?? p.takeover
    if (master !== null && master !== undefined) result.failover_ms = master - p.trigger
    let stuck: FlowSummary[] = []
    if (witnessResult) {
      const f = phaseFlows(witnessResult, { start: p.trigger, end, takeover: p.takeover })
      Object.assign(result, { per_flow: f.per_flow, flows: f.flows, by_family: f.byFamily, gap_ms: f.gap_ms })
      stuck = f.stuck
      if (f.selfStalls.count) notes.push(`${p.name}: the witness itself stalled ${f.selfStalls.count} time(s), up to ${f.selfStalls.worstMs} ms (CPU on the probe host: it neither sent nor read); the flows' gaps inside those stalls are not counted as data-plane gaps`)
      if (f.tcpGap !== null && f.gap_ms !== null && f.tcpGap > f.gap_ms) notes.push(`${p.name}: worst TCP stall ${f.tcpGap} ms (a TCP flow waits for its next retransmission, whose timer doubled while the path was down; the data-plane gap is the UDP witnesses' ${f.gap_ms} ms)`)
      if (f.firstPacket !== null) p.timeline.push({ event: 'first_packet', node: p.to.name, t: f.firstPacket, detail: `first witness echo after the VIPs moved to ${p.to.name} (${f.stalled} of ${f.flows.total} flows stalled across the move)` })
      if (f.allFlowing !== null && f.stalled > 1) p.timeline.push({ event: 'flows_recovered', node: p.to.name, t: f.allFlowing, detail: `all ${f.stalled} stalled flows flowing again` })
    } else if (p.live) {
      const l = judgeLive(p.live.before, p.live.after)
      // live flows show survival, not timing: no gap per family either
      const byFamily = Object.fromEntries(Object.entries(countByFamily(l.per_flow)).map(([k, c]) => [k, { ...c, gap_ms: null }]))
      Object.assign(result, { per_flow: l.per_flow, flows: { total: l.total, kept: l.total - l.reset, reset: l.reset, lost_messages: 0 }, by_family: byFamily })
      notes.push(`${p.name}: of ${l.total} established flows through ${p.from.name}, ${l.carrying} carry packets on ${p.to.name}, ${l.idle} are idle there, ${l.reset} are gone or closed`)
    }
    p.timeline.sort((a, b) => a.t - b.t)
    results.push(result)
    verdictIn.push({ phase: result, expectTakeover: p.expectTakeover, takeover: p.takeover !== null, verify: p.verify, boundWhy: p.bound.why, measured, stuck })
  })
  if (witnessResult) {
    const early = witnessResult.flows.filter((f) => f.reset && f.resetAt !== undefined && phases[0] && f.resetAt < phases[0].trigger)
    if (early.length) notes.push(`${early.length} witness flows were reset before the trigger and are not counted`)
  }
  for (const v of verdictIn) notes.push(v.boundWhy.replace(/^(\w+) bound/, `${v.phase.phase} bound`))
  // live flows, but none found: nothing witnessed the data plane
  if (measured === 'live-flows' && !results[0]?.flows.total) for (const v of verdictIn) v.measured = 'none'
  const { verdict, reasons } = judge(verdictIn, final)
  // the likely cause first
  if (verdict === 'fail' && unreplicated) reasons.unshift(unreplicated)
  const fo = results[0]!
  const id = `${startedAt.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}-${pair.name}-${mode}-${randomBytes(2).toString('hex')}`
  return {
    id,
    pair: pair.name,
    site: input.site,
    kind: pair.kind,
    mode,
    started_at: startedAt.toISOString(),
    ended_at: new Date().toISOString(),
    verdict,
    reasons,
    notes,
    flows: { total: fo.flows.total, kept: fo.flows.kept, reset: fo.flows.reset },
    ...(fo.by_family ? { flows_by_family: fo.by_family } : {}),
    gap_ms: fo.gap_ms,
    failover_ms: fo.failover_ms,
    commit: fo.commit,
    timeline: fo.timeline,
    failover: fo,
    failback: results[1] ?? null,
    clock_offsets_ms: offsets,
    witnesses: measured === 'probes' ? 'probes' : 'live-flows',
  }
}
