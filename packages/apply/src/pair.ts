import { dirname } from 'node:path'
import { HafwError, reporter, sleep, throwIfAborted, type Operation } from '@hafw/core'
import { loadInventory, type HostModel, type Model, type PairModel } from '@hafw/inventory'
import { openNode, planNode, readNodeState, readSpec } from '@hafw/plan'
import { renderInventory, type RenderedNode } from '@hafw/render'
import { withSession, type Session } from '@hafw/transport'
import { parseAddrs, vipHolders } from '@hafw/verify'
import { gateError, gateLoops, healthGate, hostGate, type GateResult, type ProbeLoops } from './gate.js'
import { decideOrder } from './order.js'
import { restartsConntrackd } from './scripts.js'
import { confirm, conntrackdConfOf, discard, parseMarker, pollRolledBack, readGeneration, resyncConf, rollbackNow, stage, swap, type NodeCtx, type RollbackReport } from './node.js'

export interface ApplyOptions {
  /** fail over to the updated standby before the active node is touched */
  handover?: boolean
  /** seconds the node waits for hafw's confirmation before it rolls itself back (default 60) */
  confirmTimeoutS?: number
  /** record unknown host keys instead of refusing them */
  acceptNew?: boolean
  /** when the health gate fails, start the node's rollback at once over the existing connection (default true); false leaves it to the timer */
  earlyRollback?: boolean
}

/** The input of one pair's rollout: JSON-serialisable, without secrets (see redactPair). */
export interface PairApplyInput {
  site: string
  /** the inventory file (absolute): relative SSH paths, and the VRRP password, are read from it */
  source: string
  pair: PairModel
  options?: ApplyOptions
  /** instead of the inventory's files: go back to this generation on each node (default: the previous one) */
  rollback?: { to?: number }
}

/** The input of one `hosts:` entry's rollout: a single node, no HA order, no VRRP or sync. */
export interface HostApplyInput {
  site: string
  source: string
  host: HostModel
  options?: ApplyOptions
  rollback?: { to?: number }
}

export type ApplyInput = PairApplyInput | HostApplyInput
export const isHostInput = (i: ApplyInput): i is HostApplyInput => 'host' in i
/** The name a rollout item, its lock and its summary row go by. */
export const inputName = (i: ApplyInput): string => (isHostInput(i) ? i.host.name : i.pair.name)

export interface NodeOutcome {
  node: string
  role: 'standby' | 'active' | 'fresh' | 'host'
  result: 'unchanged' | 'applied' | 'rolled-back' | 'undone' | 'failed' | 'not started'
  previous: number | null
  generation: number | null
  changed: string[]
  steps: string[]
  ms: number
  gateMs?: number
  rollback?: RollbackReport
  error?: string
}

export interface PairApplyResult {
  /** the pair's name, or the host's */
  pair: string
  /** a `hosts:` entry, not a pair */
  host?: boolean
  ok: boolean
  noop: boolean
  order: string[]
  why: string
  handover: boolean
  /** the node holding the VIPs at the end */
  master: string | null
  nodes: NodeOutcome[]
  ms: number
}

export const DEFAULT_CONFIRM_S = 60

/** The pair as job input: the VRRP password stays in the inventory file. */
export function redactPair(p: PairModel): PairModel {
  return p.vrrp.auth ? { ...p, vrrp: { ...p.vrrp, auth: { ...p.vrrp.auth, password: '' } } } : p
}

async function withSecrets(input: PairApplyInput): Promise<PairModel> {
  const p = input.pair
  if (!p.vrrp.auth || p.vrrp.auth.password) return p
  const full = (await loadInventory(input.source)).pairs.find((x) => x.name === p.name)
  if (!full?.vrrp.auth) throw new HafwError(`${input.source}: pair ${p.name} no longer has the VRRP authentication the job was submitted with`)
  return { ...p, vrrp: { ...p.vrrp, auth: full.vrrp.auth } }
}

/**
 * Roll one pair out (or back): read both nodes, plan, stage and check both, then node by node
 * in HA order: arm the on-host rollback, swap, run the services, health gate, confirm. A node
 * that fails rolls back (and the other node of the pair with it); the error carries the
 * per-node outcome in `details`. A `hosts:` entry goes the same way as a pair of one node,
 * with the host's gate (units, fwmark rules, SSH) instead of the pair's.
 */
export const applyPair: Operation<ApplyInput, PairApplyResult> = async (input, progress, signal, lease) => {
  const t0 = Date.now()
  const o = { confirmTimeoutS: DEFAULT_CONFIRM_S, earlyRollback: true, handover: false, acceptNew: false, ...input.options }
  if (!Number.isInteger(o.confirmTimeoutS) || o.confirmTimeoutS < 15) throw new HafwError(`confirm timeout must be at least 15 s, found ${o.confirmTimeoutS}`)
  const host = isHostInput(input) ? input.host : null
  const pair = isHostInput(input) ? null : await withSecrets(input)
  const name = inputName(input)
  const owner = (pair ?? host)!
  const nodes = pair ? pair.nodes : [host!]
  const model: Model = { version: 1, site: input.site, source: input.source, pairs: pair ? [pair] : [], hosts: host ? [host] : [] }
  const log = reporter(progress, name)
  const sessions: Record<string, Session> = {}
  let loops: ProbeLoops | undefined
  const result: PairApplyResult = { pair: name, ...(host ? { host: true } : {}), ok: false, noop: false, order: [], why: '', handover: false, master: null, nodes: [], ms: 0 }
  const fail = (msg: string, transient = false): never => {
    result.ms = Date.now() - t0
    throw Object.assign(new HafwError(`${host ? 'host' : 'pair'} ${name}: ${msg}`, { transient }), { details: result })
  }
  try {
    const connecting = Promise.allSettled(nodes.map((n) => openNode(model, n, { acceptNew: o.acceptNew, signal, progress })))
    // Rendering is CPU work (the first one in a process compiles the templates): do it while the
    // handshakes run; a render error is thrown once the sessions are known (and closed below).
    let rendered: Record<string, RenderedNode> | null = null
    let renderError: unknown
    try {
      if (!input.rollback) rendered = Object.fromEntries(nodes.map((n) => [n.name, renderInventory(model, { ...(pair ? { pair: pair.name } : {}), node: n.name })[0]!]))
    } catch (e) {
      renderError = e
    }
    const conns = await connecting
    conns.forEach((c, i) => c.status === 'fulfilled' && (sessions[nodes[i]!.name] = c.value))
    if (renderError) throw renderError
    const down = conns.flatMap((c) => (c.status === 'rejected' ? [c.reason as HafwError] : []))
    if (down.length) fail(`nothing changed, a node cannot be reached: ${down.map((e) => e.message).join('; ')}`, down.every((e) => e.transient))
    log.debug(`phase: connected in ${Date.now() - t0} ms`)

    // What each node should get: the rendered inventory, or a generation it keeps.
    const fence = lease?.fence[name]
    const ctxs: NodeCtx[] = await Promise.all(
      nodes.map(async (n) => {
        const s = sessions[n.name]!
        let target: RenderedNode
        if (input.rollback) {
          const probe = await readNodeState(s, [], [], owner.firewall.backend, signal)
          const to = input.rollback.to ?? [...probe.confirmed].reverse().find((g) => g < (probe.generation ?? 0))
          if (to === undefined) fail(`${n.name} keeps no confirmed generation before ${probe.generation ?? 'none'} to roll back to (kept: ${probe.generations.join(', ') || 'none'})`)
          target = await readGeneration(s, n.name, to!)
        } else target = rendered![n.name]!
        const { paths, units } = readSpec(target)
        const state = await readNodeState(s, paths, units, owner.firewall.backend, signal)
        return { name: n.name, session: s, target, state, plan: planNode(target, state), ...(fence !== undefined ? { fence } : {}) }
      }),
    )
    log.debug(`phase: read and planned at ${Date.now() - t0} ms`)
    const ctx = (name: string) => ctxs.find((c) => c.name === name)!
    const changed = ctxs.filter((c) => c.plan.changes).map((c) => c.name)
    const decision = pair
      ? decideOrder(pair, Object.fromEntries(ctxs.map((c) => [c.name, c.state.addr])), changed, o.handover)
      : { order: changed, active: null, handover: false, why: `host ${name}: one node, no HA order` }
    Object.assign(result, { order: decision.order, why: decision.why, handover: decision.handover })
    result.nodes = ctxs.map((c) => ({
      node: c.name,
      role: host ? 'host' : decision.active === null ? 'fresh' : c.name === decision.active ? 'active' : 'standby',
      result: c.plan.changes ? 'not started' : 'unchanged',
      previous: c.state.generation,
      generation: c.state.generation,
      changed: c.plan.files.map((f) => f.path),
      steps: [...c.plan.steps.map((s) => `${s.service}/${s.action}`), ...(c.plan.enable.length ? ['enable'] : []), ...(c.plan.start.length ? ['start'] : [])],
      ms: 0,
    }))
    const out = (name: string) => result.nodes.find((n) => n.node === name)!
    if (!changed.length) {
      log.info('no changes')
      Object.assign(result, { ok: true, noop: true, master: decision.active, ms: Date.now() - t0 })
      return result
    }
    log.info(decision.why)

    // Stage and check both nodes before either changes.
    try {
      await Promise.all(changed.map((n) => stage(ctx(n), owner, signal)))
    } catch (e) {
      await Promise.all(changed.map((n) => discard(ctx(n))))
      fail((e as Error).message)
    }
    log.debug(`phase: staged and checked at ${Date.now() - t0} ms`)

    const reconnect = <T>(node: string, fn: (s: Session) => Promise<T>) => withSession(nodes.find((x) => x.name === node)!.ssh, fn, { name: node, baseDir: dirname(input.source), signal })
    const units = Object.fromEntries(ctxs.map((c) => [c.name, readSpec(c.target).units]))
    // Both gates of the pair sample over the same probe loops: one channel per node, not one per sample.
    loops = gateLoops(sessions, pair, units, (n) => conntrackdConfOf(ctx(n).target))
    loops.warm(nodes.map((n) => n.name))
    const done: NodeCtx[] = []
    for (const node of decision.order) {
      throwIfAborted(signal)
      const c = ctx(node)
      const t1 = Date.now()
      const peer = nodes.find((n) => n.name !== node)?.name
      const nlog = log.scoped(node)
      let extraStart: string[] = []
      if (pair && decision.handover && node === decision.active) {
        try {
          await handOver(pair, c, sessions[peer!]!, nlog, signal)
        } catch (e) {
          await undoAll(done, result, nlog)
          fail((e as Error).message)
        }
        extraStart = ['keepalived.service']
      }
      nlog.info(`generation ${c.gen}: ${c.plan.files.length} file(s), ${out(node).steps.join(', ') || 'no service action'}; rollback armed for ${o.confirmTimeoutS} s`)
      // a new TCP connection through the new ruleset, key exchange and login: what a change
      // that locks SSH out would break (a session channel on top would add a shell, not proof).
      // It starts once the swap changed everything on its path, while conntrackd restarts.
      let ssh: Promise<void> | undefined
      const newConnection = () => (ssh ??= reconnect(node, async () => undefined))
      const sw = await swap(c, o.confirmTimeoutS, extraStart, signal, () => void newConnection().catch(() => undefined))
      nlog.debug(`phase: swapped in ${Date.now() - t1} ms (${sw.steps.map((x) => `${x.step} ${x.ms} ms`).join(', ')})`)
      let why: string | undefined
      if (!sw.ok) why = `applying failed: ${sw.error}`
      else {
        const left = c.armedAt! + o.confirmTimeoutS * 1000 - Date.now() - 5000
        const common = {
          node,
          reconnect: newConnection,
          timeoutMs: Math.max(3000, Math.min(30_000, left - nodes.find((n) => n.name === node)!.ssh.connect_timeout * 1000)),
          signal,
          onWait: (w: string) => nlog.debug(`gate: ${w}`),
        }
        const gate: GateResult = pair
          ? await healthGate({
              ...common,
              pair,
              updated: [...done.map((d) => d.name), node],
              loops,
              ...(restartsConntrackd(c.plan.steps, [...c.plan.start, ...extraStart]) ? { restarted: true, resync: resyncConf(c, pair) !== undefined } : {}),
            })
          : await hostGate({ ...common, host: host!, loops })
        out(node).gateMs = gate.ms
        nlog.debug(`phase: health gate ${gate.ok ? 'passed' : 'failed'} in ${gate.ms} ms (${gate.samples} samples)`)
        result.master = gate.master
        if (!gate.ok) why = gateError(node, gate).message
        else {
          const confirmed = await confirm(c, owner, signal).catch((e: Error) => ((why = `confirm failed: ${e.message}`), false))
          if (confirmed) {
            Object.assign(out(node), { result: 'applied', generation: c.gen, ms: Date.now() - t1 })
            nlog.info(`generation ${c.gen} confirmed (health gate ${(gate.ms / 1000).toFixed(1)} s${pair ? `, ${gate.master ?? 'nobody'} holds the VIPs` : ''}${gate.note ? `; ${gate.note}` : ''})`)
            done.push(c)
            continue
          }
          why ??= `the node rolled generation ${c.gen} back before hafw could confirm it (confirm timeout ${o.confirmTimeoutS} s too short?)`
        }
      }
      nlog.error(why!)
      const rb = await rollBack(c, o, (fn) => reconnect(node, fn), nlog)
      Object.assign(out(node), { result: rb.ok ? 'rolled-back' : 'failed', generation: rb.current, rollback: rb, error: why, ms: Date.now() - t1 })
      await undoAll(done, result, nlog)
      fail(`${why}; ${rb.ok ? `${node} rolled back to generation ${rb.current ?? '(before hafw)'} by ${rb.trigger === 'timer' ? "the node's own timer" : 'hafw'} in ${(rb.ms / 1000).toFixed(1)} s${rb.reachable ? ', SSH works again' : ', but SSH still fails'}` : `ROLLBACK OF ${node} NOT CONFIRMED: ${rb.detail}`}`)
    }
    Object.assign(result, { ok: true, ms: Date.now() - t0 })
    return result
  } finally {
    loops?.close()
    await Promise.all(Object.values(sessions).map((s) => s.close()))
  }
}

/** Stop keepalived on the active node and wait until its peer holds every VIP (and committed). */
async function handOver(pair: PairModel, c: NodeCtx, peer: Session, log: ReturnType<typeof reporter>, signal: AbortSignal): Promise<void> {
  const t0 = Date.now()
  log.info(`handover: stopping keepalived so the peer takes the VIPs`)
  await c.session.exec('systemctl stop keepalived.service', { timeoutMs: 30_000, signal })
  const limit = Date.now() + 10_000 + 4 * pair.vrrp.advert_int * 1000
  for (;;) {
    const r = await peer.exec("ip -o addr show; echo @@state; cat /run/hafw/state.json 2>/dev/null", { timeoutMs: 10_000, signal })
    const [addr = '', state = ''] = r.stdout.split('@@state')
    const peerName = pair.nodes.find((n) => n.name !== c.name)!.name
    const all = vipHolders(pair, { [peerName]: parseAddrs(addr) }).every((i) => i.vips.every((v) => v.holders.length === 1))
    // hafw-notify writes phase "done" once `conntrackd -c` committed (primary role)
    const committed = !pair.conntrack_sync || /"role":"primary","phase":"done"/.test(state.replace(/\s/g, ''))
    if (all && committed) {
      log.info(`handover: ${peerName} holds every VIP${pair.conntrack_sync ? ' and committed the replicated flows' : ''} after ${((Date.now() - t0) / 1000).toFixed(1)} s`)
      return
    }
    if (Date.now() > limit) {
      await c.session.exec('systemctl start keepalived.service', { timeoutMs: 30_000 }).catch(() => undefined)
      throw new HafwError(`${c.name}: handover failed: ${peerName} did not take over every VIP${all ? ' (state script did not finish its commit)' : ''} within ${((Date.now() - t0) / 1000).toFixed(0)} s; keepalived started again on ${c.name}, nothing changed there`)
    }
    await sleep(200, signal)
  }
}

/** The failed node's own rollback: at once over the existing connection, or left to its timer. */
async function rollBack(c: NodeCtx, o: Required<Pick<ApplyOptions, 'earlyRollback' | 'confirmTimeoutS'>>, reconnect: (fn: (s: Session) => Promise<string>) => Promise<string>, log: ReturnType<typeof reporter>): Promise<RollbackReport> {
  const t0 = Date.now()
  if (o.earlyRollback) {
    try {
      log.warn(`rolling back generation ${c.gen} now (the node's timer would in ${Math.max(0, Math.round((c.armedAt! + o.confirmTimeoutS * 1000 - Date.now()) / 1000))} s)`)
      const m = parseMarker(await rollbackNow(c))
      const again = await pollRolledBack(c.gen!, reconnect, Date.now() + 30_000)
      return { trigger: 'hafw', ok: m.rolledBack, current: m.current, reachable: again.reachable, ms: Date.now() - t0, detail: again.error ?? '' }
    } catch (e) {
      log.warn(`cannot roll back over this connection (${(e as Error).message}); waiting for the node's timer`)
    }
  }
  const fireAt = c.armedAt! + o.confirmTimeoutS * 1000
  log.warn(`waiting for the node's rollback timer (fires in ${Math.max(0, Math.round((fireAt - Date.now()) / 1000))} s)`)
  await new Promise((r) => setTimeout(r, Math.max(0, fireAt - Date.now() + 1000)))
  const p = await pollRolledBack(c.gen!, reconnect, fireAt + 90_000)
  const m = parseMarker(p.out)
  log.info(m.rolledBack ? `the node rolled generation ${c.gen} back itself; now at ${m.current ?? '(before hafw)'}` : `no sign of a rollback on the node: ${p.error ?? p.out.trim()}`)
  return { trigger: 'timer', ok: m.rolledBack, current: m.current, reachable: p.reachable, ms: Date.now() - fireAt, detail: p.error ?? '' }
}

/** The pair's other node already confirmed its generation: undo it too, so the pair stays consistent. */
async function undoAll(done: NodeCtx[], result: PairApplyResult, log: ReturnType<typeof reporter>): Promise<void> {
  for (const d of done.reverse()) {
    const out = result.nodes.find((n) => n.node === d.name)!
    try {
      const m = parseMarker(await rollbackNow(d, { force: true }))
      Object.assign(out, { result: m.rolledBack ? 'undone' : 'failed', generation: m.current })
      log.warn(`${d.name}: generation ${d.gen} undone, back to ${m.current ?? '(before hafw)'}`)
    } catch (e) {
      Object.assign(out, { result: 'failed', error: `undo failed: ${(e as Error).message}` })
    }
  }
  done.length = 0
}

