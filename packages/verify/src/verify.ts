import { HafwError, InvalidInputError, reporter, sleep, throwIfAborted, type Progress, type SourceIssue } from '@hafw/core'
import { ipProblem, loadInventory, type Model, type NodeModel, type PairModel } from '@hafw/inventory'
import { pairNodeView } from '@hafw/render/view'
import { type DumpKind, type DumpStats, type NodeProbe, ADDR_COMMAND, dumpCommand, openDump, parseAddrs, probeNode } from './collect.js'
import { type CompareCounts, type CompareMemo, type CompareResult, type Mismatch, compareFlows } from './compare.js'
import { type SyncFilter, compileSyncFilter } from './filter.js'
import { parseFlows } from './parse.js'
import type { Flow } from './flow.js'
import { type CtSample, type NodeInput, type PairHealth, type Problem, type Role, type SyncHealth, HISTORICAL, SILENT_MS, judgePair, rolesByNode } from './health.js'
import { SessionPool } from './pool.js'

/*
 * `hafw verify`: per pair, poll both nodes over one SSH session each until the standby's external
 * cache holds what the active node has (entry by entry) and the pair is healthy, or the deadline.
 *
 * A poll: probe both nodes (VIPs, units, state script, conntrackd -s), decide who is active by VIP
 * ownership, stream the active's kernel table (or internal cache) and the standby's external cache
 * into compareFlows at the same time, then sample conntrackd -s again. compareFlows' memo carries
 * from poll to poll: a difference of unknown age is only reported once it persisted for the grace
 * window. Converged means: nothing reported, and every difference still open is younger than the
 * grace window (it appeared after the previous poll, and that poll was at most a window ago).
 */

export type VerifySource = 'kernel' | 'internal'

export interface VerifyOptions {
  /** only these pairs (default: every pair) */
  pairs?: string[]
  /** seconds to keep re-polling a pair that is not converged or not healthy (default 30; 0: one poll) */
  deadline?: number
  /** seconds a difference may last before it counts (default 5) */
  grace?: number
  /** the active side: its kernel table (default) or conntrackd's internal cache */
  source?: VerifySource
  /** samples kept per category (default 5) */
  samples?: number
  /** pairs verified at once (default 8) */
  parallel?: number
  acceptNew?: boolean
}

/** Differences are counted as compareFlows counts them (matched, missing, extra, ...). */
export interface VerifyCounts extends Pick<CompareCounts, 'matched' | 'missing' | 'extra' | 'mismatched' | 'movedOn' | 'young' | 'pending'> {
  /** entries in the active node's kernel table (the dump, or nf_conntrack_count) */
  activeKernel: number | null
  /** entries in the active node's internal cache (the dump, or conntrackd -s) */
  activeInternal: number | null
  /** entries in the standby's external cache (the dump) */
  standbyExternal: number | null
  /** entries compared on each side, after the conntrackd Filter */
  compared: { active: number; standby: number } | null
  /** entries the Filter keeps out of sync (the node's own addresses, other protocols) */
  ignored: { active: number; standby: number } | null
}

export interface PairVerifyResult {
  pair: string
  kind: PairModel['kind']
  /** converged (or a pair without sync) and no problem */
  ok: boolean
  /** null on a pair without conntrack sync (a load-balancer pair): VRRP health only */
  converged: boolean | null
  active: string | null
  standby: string | null
  source: VerifySource | null
  counts: VerifyCounts
  /** samples: on the active, not on the standby */
  missing: Flow[]
  /** samples: on the standby, not on the active */
  extra: Flow[]
  /** samples: same original tuple, different state, mark or reply tuple */
  mismatched: Mismatch[]
  problems: Problem[]
  /** node -> VRRP instance -> role */
  roles: Record<string, Record<string, Role>>
  vips: { instance: string; vip: string; holders: string[] }[]
  sync: Record<string, SyncHealth> | null
  polls: number
  ms: number
  /** the last poll's dumps: bytes and time of each command's output */
  dumps: DumpStats[]
  /** most entries compareFlows held at once in the last poll */
  peakHeld: number
}

export interface VerifyResult {
  ok: boolean
  site: string
  pairs: PairVerifyResult[]
  ms: number
}

const DEFAULT_DEADLINE_S = 30
const DEFAULT_GRACE_S = 5
const RETRY_MS = 1000

/**
 * The active node's conntrackd Filter as the template renders it (Address Ignore: 127.0.0.1 (and
 * ::1) and the node's own addresses of both families; Protocol Accept: the sync protocols), plus
 * the nodes' SSH addresses (either family): hafw's own management connections change while it
 * looks (it opens them), on both sides alike. Where SSH uses an inventory address, as in
 * production, the Filter ignores it already.
 */
export function syncFilter(model: Model, pair: PairModel, active: NodeModel): SyncFilter {
  const ct = pairNodeView(model, pair, active).conntrackd
  if (!ct) throw new HafwError(`pair ${pair.name} has no conntrack sync`)
  // the model holds SSH hosts in canonical text, as conntrack prints them
  const mgmt = pair.nodes.map((n) => n.ssh.host).filter((h) => !ipProblem(h))
  return { ignoreAddresses: [...new Set([...ct.ignore.map((i) => i.address), ...mgmt])], acceptProtocols: ct.protocols }
}

/** What a probe of this pair's nodes needs: where conntrackd.conf and the state script's files are. */
export function probeOptions(model: Model, pair: PairModel): { conntrackdConf?: string; runDir: string } {
  const v = pairNodeView(model, pair, pair.nodes[0])
  return { ...(pair.conntrack_sync ? { conntrackdConf: v.layout.conntrackd } : {}), runDir: v.runtime.runDir }
}

/** Per node: the latest probe and the first/latest conntrackd samples of a run. */
export class PairSamples {
  private readonly nodes = new Map<string, NodeInput>()
  constructor(readonly pair: PairModel) {
    for (const n of pair.nodes) this.nodes.set(n.name, { name: n.name })
  }

  add(node: string, r: PromiseSettledResult<NodeProbe>, full: boolean): void {
    const i = this.nodes.get(node)!
    if (r.status === 'rejected') {
      if (full) {
        delete i.probe
        i.error = (r.reason as Error).message
      }
      return
    }
    const p = r.value
    if (full) {
      i.probe = p
      delete i.error
    }
    const stats = p.conntrackd?.running ? p.conntrackd.stats : undefined
    if (!stats) return
    const s: CtSample = { t: p.t, stats }
    i.first ??= s
    i.last = s
    if (!full && i.probe?.conntrackd) i.probe.conntrackd = p.conntrackd
  }

  judge(): PairHealth {
    return judgePair(this.pair, [...this.nodes.values()])
  }

  /** The node's latest full probe. */
  probe(node: string): NodeProbe | undefined {
    return this.nodes.get(node)?.probe
  }

  /** Judge counters from the latest sample on for these nodes (status --watch: a sliding window). */
  rebase(nodes: string[]): void {
    for (const n of nodes) {
      const i = this.nodes.get(n)
      if (i?.last) i.first = i.last
    }
  }
}

/** Probe both nodes at once over the pool; statsOnly: just conntrackd -s. */
export async function probePair(pool: SessionPool, model: Model, pair: PairModel, samples: PairSamples, signal: AbortSignal, statsOnly = false): Promise<PairHealth> {
  const o = { ...probeOptions(model, pair), statsOnly }
  if (statsOnly && !o.conntrackdConf) return samples.judge()
  const rs = await Promise.allSettled(pair.nodes.map((n) => pool.run(n, (s) => probeNode(s, o, signal))))
  throwIfAborted(signal)
  pair.nodes.forEach((n, k) => samples.add(n.name, rs[k]!, !statsOnly))
  return samples.judge()
}

/**
 * Sample conntrackd -s until the sync liveness of these nodes is known: a message arrived, or
 * none for SILENT_MS since the run's first sample. FTFW sends one a second each way, so this
 * waits only when the run so far was shorter than that.
 */
export async function settleLiveness(pool: SessionPool, model: Model, pair: PairModel, samples: PairSamples, health: PairHealth, signal: AbortSignal, nodes?: string[]): Promise<PairHealth> {
  for (;;) {
    const open = Object.entries(health.sync ?? {}).filter(([n, h]) => (!nodes || nodes.includes(n)) && h.running && h.liveness === 'unknown' && h.rxPackets !== null)
    if (!open.length || pair.conntrack_sync?.mode !== 'ftfw') return health
    const waited = Math.min(...open.map(([, h]) => h.windowMs))
    await sleep(Math.min(150, SILENT_MS - waited), signal)
    health = await probePair(pool, model, pair, samples, signal, true)
  }
}

/** The node holding every VIP (both families) of the pair while its peer holds none, else null (one `ip addr` each). */
async function vipOwner(pool: SessionPool, pair: PairModel, signal: AbortSignal): Promise<string | null> {
  const want = pair.vrrp.instances.flatMap((i) => i.vips.map((c) => c.ip))
  const rs = await Promise.allSettled(pair.nodes.map((n) => pool.run(n, (s) => s.exec(ADDR_COMMAND, { timeoutMs: 20_000, signal }))))
  const held = rs.map((r) => (r.status === 'fulfilled' ? new Set(parseAddrs(r.value.stdout).map((a) => a.ip)) : undefined))
  if (held.some((h) => !h)) return null
  const all = held.map((h) => want.every((ip) => h!.has(ip)))
  const none = held.map((h) => !want.some((ip) => h!.has(ip)))
  return all[0] && none[1] ? pair.nodes[0].name : all[1] && none[0] ? pair.nodes[1].name : null
}

interface ComparePoll {
  r: CompareResult
  dumps: DumpStats[]
}

/** Stream the active's table and the standby's external cache into compareFlows at once. */
async function comparePoll(
  pool: SessionPool,
  active: NodeModel,
  standby: NodeModel,
  conf: string,
  filter: SyncFilter,
  o: { source: VerifySource; grace: number; samples: number; memo: CompareMemo | undefined; now: number },
  signal: AbortSignal,
): Promise<ComparePoll> {
  const opened = await Promise.allSettled([
    pool.run(active, (s) => openDump(s, active.name, o.source as DumpKind, conf, signal)),
    pool.run(standby, (s) => openDump(s, standby.name, 'external', conf, signal)),
  ])
  const [a, b] = opened.map((x) => (x.status === 'fulfilled' ? x.value : undefined))
  const failed = opened.find((x) => x.status === 'rejected')
  if (failed) {
    a?.cancel()
    b?.cancel()
    throw (failed as PromiseRejectedResult).reason
  }
  try {
    const keep = compileSyncFilter(filter)
    const r = await compareFlows(
      parseFlows(a!.chunks, { format: 'text', source: `${active.name}: ${dumpCommand(o.source, conf)}` }),
      parseFlows(b!.chunks, { format: 'text', source: `${standby.name}: ${dumpCommand('external', conf)}` }),
      { graceSeconds: o.grace, now: o.now, samples: o.samples, activeFilter: keep, standbyFilter: keep, ...(o.memo ? { previous: o.memo } : {}), signal },
    )
    return { r, dumps: await Promise.all([a!.done, b!.done]) }
  } catch (e) {
    a!.cancel()
    b!.cancel()
    // the command's own failure (conntrackd stopped mid-dump) says more than the parser's
    const why = await Promise.all([a!.done, b!.done]).then(() => undefined, (x: Error) => x)
    throw why ?? e
  }
}

function emptyCounts(): VerifyCounts {
  return {
    activeKernel: null, activeInternal: null, standbyExternal: null, compared: null, ignored: null,
    matched: 0, missing: 0, extra: 0, mismatched: 0, movedOn: 0, young: 0, pending: 0,
  }
}

/** Verify one pair: poll until converged and healthy, or the deadline. Never throws for node faults: they are problems. */
export async function verifyPairModel(model: Model, pair: PairModel, opts: VerifyOptions, progress: Progress, signal: AbortSignal, pool: SessionPool): Promise<PairVerifyResult> {
  const t0 = Date.now()
  const log = reporter(progress, pair.name)
  const deadlineAt = t0 + (opts.deadline ?? DEFAULT_DEADLINE_S) * 1000
  const grace = opts.grace ?? DEFAULT_GRACE_S
  const graceMs = grace * 1000
  const source: VerifySource = opts.source ?? 'kernel'
  const sync = pair.conntrack_sync
  const conf = probeOptions(model, pair).conntrackdConf
  const samples = new PairSamples(pair)
  let memo: CompareMemo | undefined
  let prevPollAt: number | undefined
  let result: PairVerifyResult | undefined

  for (let poll = 1; ; poll++) {
    throwIfAborted(signal)
    const now = Date.now()
    // VIP ownership alone decides what to dump; the full probe runs alongside (its conntrackd
    // sample first: the longer the run it opens, the sooner the sync link's liveness is known).
    const probing = probePair(pool, model, pair, samples, signal)
    probing.catch(() => undefined)
    const owner = sync ? await vipOwner(pool, pair, signal) : null
    let comparing: Promise<ComparePoll> | undefined
    if (owner) {
      const active = pair.nodes.find((n) => n.name === owner)!
      const standby = pair.nodes.find((n) => n.name !== owner)!
      comparing = comparePoll(pool, active, standby, conf!, syncFilter(model, pair, active), { source, grace, samples: opts.samples ?? 5, memo, now }, signal)
      comparing.catch(() => undefined)
    }
    let health = await probing
    const counts = emptyCounts()
    let cmp: ComparePoll | undefined
    const extraProblems: Problem[] = []
    if (comparing) {
      try {
        cmp = await comparing
      } catch (e) {
        throwIfAborted(signal)
        // a node fault (connection lost, conntrackd stopped mid-dump) or output hafw cannot read;
        // a conntrackd the probe found stopped explains it already
        if (Object.values(health.sync ?? {}).every((h) => h.running)) extraProblems.push({ kind: 'dump-failed', message: (e as Error).message })
      }
      // the VIPs moved while we looked: this comparison says nothing
      if (cmp && health.active !== owner) cmp = undefined
      if (cmp) memo = cmp.r.memo
      health = await probePair(pool, model, pair, samples, signal, true)
    }
    // A verdict is final only with the sync link's liveness known.
    const activeProbe = health.active ? health.sync?.[health.active] : undefined
    if (cmp) {
      const c = cmp.r.counts
      const activeTotal = c.active + c.ignored.active
      Object.assign(counts, {
        activeKernel: source === 'kernel' ? activeTotal : null,
        activeInternal: source === 'internal' ? activeTotal : (activeProbe?.internal ?? null),
        standbyExternal: c.standby + c.ignored.standby,
        compared: { active: c.active, standby: c.standby },
        ignored: { ...c.ignored },
        matched: c.matched, missing: c.missing, extra: c.extra, mismatched: c.mismatched, movedOn: c.movedOn, young: c.young, pending: c.pending,
      })
    } else if (health.active && sync) {
      // nothing compared: the sizes the probes saw
      counts.activeInternal = activeProbe?.internal ?? null
      counts.standbyExternal = health.standby ? (health.sync?.[health.standby]?.external ?? null) : null
    }
    if (counts.activeKernel === null && health.active && sync) counts.activeKernel = samples.probe(health.active)?.kernelEntries ?? null

    let converged: boolean | null = null
    if (sync) {
      if (!cmp) converged = false
      else {
        const c = cmp.r.counts
        // differences first seen before this poll and not yet reported: undecided
        let carried = 0
        for (const first of cmp.r.memo.values()) if (first < now && now - first < graceMs) carried++
        const fresh = c.pending === 0 || (prevPollAt !== undefined && now - prevPollAt <= graceMs + 1000)
        converged = cmp.r.converged && carried === 0 && fresh
      }
    }
    const final = converged !== false || Date.now() >= deadlineAt
    // The standby must hear the active (that is how state gets there); the active's side is
    // judged on the time the run took anyway.
    if (final) health = await settleLiveness(pool, model, pair, samples, health, signal, health.standby ? [health.standby] : undefined)
    const problems = [...health.problems, ...extraProblems]
    const blocking = problems.filter((p) => !HISTORICAL.has(p.kind))
    result = {
      pair: pair.name,
      kind: pair.kind,
      ok: converged !== false && problems.length === 0,
      converged,
      active: health.active,
      standby: health.standby,
      source: sync ? source : null,
      counts,
      missing: cmp?.r.missing ?? [],
      extra: cmp?.r.extra ?? [],
      mismatched: cmp?.r.mismatched ?? [],
      problems,
      roles: rolesByNode(health),
      vips: health.instances.flatMap((i) => i.vips.map((v) => ({ instance: i.instance, ...v }))),
      sync: health.sync,
      polls: poll,
      ms: 0,
      dumps: cmp?.dumps ?? [],
      peakHeld: cmp?.r.peakHeld ?? 0,
    }
    const left = deadlineAt - Date.now()
    if ((converged !== false && !blocking.length) || left <= 0) break
    // Next poll: when the oldest open difference reaches the grace window, else in a second.
    let wait = RETRY_MS
    if (cmp && counts.pending > 0 && counts.missing + counts.extra + counts.mismatched === 0) {
      let oldest = Infinity
      for (const first of cmp.r.memo.values()) if (now - first < graceMs) oldest = Math.min(oldest, first)
      if (oldest < Infinity) wait = Math.max(200, oldest + graceMs - Date.now() + 50)
    }
    log.debug(`poll ${poll}: ${describe(result)}; again in ${(Math.min(wait, left) / 1000).toFixed(1)} s`)
    prevPollAt = now
    await sleep(Math.min(wait, left), signal)
  }
  result.ms = Date.now() - t0
  log.info(describe(result))
  return result
}

/** One line: the verdict and the numbers behind it. */
export function describe(r: PairVerifyResult): string {
  const c = r.counts
  const head = r.converged === null ? (r.ok ? 'VRRP healthy (no conntrack sync)' : 'VRRP UNHEALTHY (no conntrack sync)') : r.converged ? 'converged' : 'NOT converged'
  const parts = [head]
  if (r.active) parts.push(`active ${r.active}, standby ${r.standby}`)
  else parts.push('no active node')
  if (r.converged !== null && r.active) {
    const n = (x: number | null) => (x === null ? '-' : String(x))
    parts.push(`kernel ${n(c.activeKernel)}, internal ${n(c.activeInternal)}, external ${n(c.standbyExternal)}`)
    if (c.compared) parts.push(`missing ${c.missing}, extra ${c.extra}, mismatched ${c.mismatched}${c.young + c.pending ? ` (young ${c.young}, pending ${c.pending})` : ''}`)
  }
  parts.push(`${r.polls} poll${r.polls === 1 ? '' : 's'}`)
  if (r.problems.length) parts.push(`${r.problems.length} problem${r.problems.length === 1 ? '' : 's'}`)
  return parts.join('; ')
}

/** Verify the selected pairs of a model (already overlaid for the lab when needed). */
export async function verifyModel(model: Model, opts: VerifyOptions, progress: Progress, signal: AbortSignal): Promise<VerifyResult> {
  const t0 = Date.now()
  const pairs = selectPairs(model, opts.pairs)
  const pool = new SessionPool(model, { acceptNew: opts.acceptNew ?? false, progress, signal })
  try {
    const out: PairVerifyResult[] = new Array(pairs.length)
    let next = 0
    const worker = async () => {
      for (let i = next++; i < pairs.length; i = next++) out[i] = await verifyPairModel(model, pairs[i]!, opts, progress, signal, pool)
    }
    await Promise.all(Array.from({ length: Math.max(1, Math.min(opts.parallel ?? 8, pairs.length)) }, worker))
    return { ok: out.every((p) => p.ok), site: model.site, pairs: out, ms: Date.now() - t0 }
  } finally {
    await pool.close()
  }
}

export function selectPairs(model: Model, names?: string[]): PairModel[] {
  if (!names?.length) return model.pairs
  return names.map((n) => {
    const p = model.pairs.find((x) => x.name === n)
    if (!p) throw new HafwError(`${model.source}: no pair "${n}" (pairs: ${model.pairs.map((x) => x.name).join(', ') || 'none'})`)
    return p
  })
}

/** The job input (`hafw verify`, `hafw schedule add verify`): JSON, no secrets. */
export interface VerifyInput {
  /** the inventory file, absolute */
  file: string
  pair?: string
  pairs?: string[]
  /** seconds */
  deadline?: number
  /** seconds */
  grace?: number
  source?: VerifySource
  /** an SSH overlay file (as `hafw lab up` writes) */
  overlay?: string
  acceptNew?: boolean
  samples?: number
}

function checkInput(i: VerifyInput): VerifyOptions {
  const issues: SourceIssue[] = []
  const bad = (path: string, message: string) => issues.push({ file: '<job input>', line: 0, column: 0, path, message })
  if (typeof i?.file !== 'string' || !i.file) bad('file', 'expected the inventory file path')
  const num = (k: 'deadline' | 'grace' | 'samples', max: number) => {
    const v = i?.[k]
    if (v !== undefined && !(typeof v === 'number' && Number.isFinite(v) && v >= 0 && v <= max)) bad(k, `expected a number 0..${max}, found ${JSON.stringify(v)}`)
  }
  num('deadline', 3600)
  num('grace', 600)
  num('samples', 1000)
  if (i?.source !== undefined && i.source !== 'kernel' && i.source !== 'internal') bad('source', `expected "kernel" or "internal", found ${JSON.stringify(i.source)}`)
  if (i?.pair !== undefined && typeof i.pair !== 'string') bad('pair', 'expected a pair name')
  if (i?.pairs !== undefined && !(Array.isArray(i.pairs) && i.pairs.every((p) => typeof p === 'string'))) bad('pairs', 'expected a list of pair names')
  if (issues.length) throw new InvalidInputError(issues, 'invalid verify input')
  const pairs = i.pair ? [i.pair] : i.pairs
  return {
    ...(pairs ? { pairs } : {}),
    ...(i.deadline !== undefined ? { deadline: i.deadline } : {}),
    ...(i.grace !== undefined ? { grace: i.grace } : {}),
    ...(i.source ? { source: i.source } : {}),
    ...(i.samples !== undefined ? { samples: i.samples } : {}),
    ...(i.acceptNew ? { acceptNew: true } : {}),
  }
}

/** The pairs a verify job locks. */
export function verifyPairsOf(i: VerifyInput): string[] {
  return i.pair ? [i.pair] : (i.pairs ?? [])
}

/**
 * The operation the queue runs as 'verify'. `loadModel` turns the input's file into the model
 * to reach (the CLI passes one that applies the lab's SSH overlay); default: the inventory as is.
 * Resolves with the result when every pair is ok; otherwise throws a HafwError (exit 1) whose
 * `details` is the result (verifyResultOf).
 */
export async function verifyPair(
  input: VerifyInput,
  progress: Progress,
  signal: AbortSignal,
  loadModel: (input: VerifyInput) => Promise<Model> = (i) => loadInventory(i.file),
): Promise<VerifyResult> {
  const opts = checkInput(input)
  const model = await loadModel(input)
  const r = await verifyModel(model, opts, progress, signal)
  if (r.ok) return r
  // a failed job (exit 1), so `hafw jobs` and schedules show it; the result travels as details
  const bad = r.pairs.filter((p) => !p.ok)
  throw Object.assign(new HafwError(`verify: ${bad.length} of ${r.pairs.length} pair${r.pairs.length === 1 ? '' : 's'} failed: ${bad.map((p) => `${p.pair} (${describe(p)})`).join('; ')}`), { details: r })
}

/** The result a failed verify job carries (see verifyPair), or undefined. */
export function verifyResultOf(e: unknown): VerifyResult | undefined {
  const d = (e as { details?: unknown } | undefined)?.details as VerifyResult | undefined
  return d && Array.isArray(d.pairs) && typeof d.ok === 'boolean' ? d : undefined
}

/** Human output: one block per pair. */
export function formatVerify(r: VerifyResult): string {
  // [fd00::1]:443 for IPv6, as in URLs: the port is not read as one more group
  const at = (ip: string, port: number | undefined) => (ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`)
  const flow = (f: Flow) => {
    const o = f.orig
    const ports = o.sport !== undefined ? `${at(o.src, o.sport)} -> ${at(o.dst, o.dport)}` : `${o.src} -> ${o.dst}`
    return `${f.proto} ${ports}${f.state ? ` ${f.state}` : ''}${f.mark ? ` mark=${f.mark}` : ''}`
  }
  const lines: string[] = []
  for (const p of r.pairs) {
    lines.push(`${p.ok ? 'ok  ' : 'FAIL'} ${p.pair}: ${describe(p)} in ${(p.ms / 1000).toFixed(1)} s`)
    for (const f of p.missing) lines.push(`       missing on ${p.standby}: ${flow(f)}`)
    for (const f of p.extra) lines.push(`       extra on ${p.standby}: ${flow(f)}`)
    for (const m of p.mismatched) lines.push(`       mismatched ${m.fields.join('+')}: ${flow(m.active)} vs ${flow(m.standby)}`)
    for (const x of p.problems) lines.push(`       problem ${x.kind}: ${x.message}`)
  }
  const bad = r.pairs.filter((p) => !p.ok).length
  lines.push(`${r.pairs.length - bad} of ${r.pairs.length} pair${r.pairs.length === 1 ? '' : 's'} ok in ${(r.ms / 1000).toFixed(1)} s`)
  return lines.join('\n')
}
