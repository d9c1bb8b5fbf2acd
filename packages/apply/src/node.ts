import { createHash } from 'node:crypto'
import { HafwError } from '@hafw/core'
import type { FirewallModel, SyncModel } from '@hafw/inventory'
import { fenceRefusal, GENERATIONS, NODE_DIR, type NodePlan, type NodeState } from '@hafw/plan'
import { manifest, type Manifest, type RenderedFile, type RenderedNode } from '@hafw/render'
import { shellQuote as q, type Session } from '@hafw/transport'
import { confirmScript, discardScript, rollbackScript, saveRuleset, stageScript, swapScript, timerUnit } from './scripts.js'

/*
 * One node's part of a rollout, step by step over its one connection. pair.ts decides the
 * order and what happens on failure; every function here is one round trip (or a poll).
 */

export interface NodeCtx {
  name: string
  session: Session
  /** what the node should end up with */
  target: RenderedNode
  state: NodeState
  plan: NodePlan
  /** the new generation's number once staged */
  gen?: number
  /** hafw's clock when the rollback timer was armed */
  armedAt?: number
  /** the job's fencing token for the pair (see Lease): every script that changes the node carries it */
  fence?: number
}


/** What the node steps need of a pair or a host (hosts have no conntrack sync). */
export interface ApplyTarget {
  firewall: Pick<FirewallModel, 'backend'>
  conntrack_sync?: Pick<SyncModel, 'mode'> | null
}

export function nextGeneration(st: NodeState): number {
  return Math.max(0, st.generation ?? 0, ...st.generations) + 1
}

/** Upload, fsync and check with the real tools; nothing in force changes. */
export async function stage(c: NodeCtx, pair: ApplyTarget, signal: AbortSignal): Promise<void> {
  const gen = nextGeneration(c.state)
  const common = { gen, prev: c.state.generation, backend: pair.firewall.backend, changes: c.plan.files }
  const resync = resyncConf(c, pair)
  const save = saveRuleset(c.plan.steps, c.state.files)
  const rb = rollbackScript({ ...common, steps: c.plan.steps, enable: c.plan.enable, start: c.plan.start, saveRuleset: save, ...(resync ? { resync } : {}) })
  const script = stageScript({ ...common, files: c.target.files, manifestJson: JSON.stringify({ ...manifest(c.target), generation: gen }, null, 2) + '\n', rollback: rb, saveRuleset: save, fence: c.fence })
  const r = await c.session.exec('sh -s', { input: script, timeoutMs: 120_000, signal })
  const refused = fenceRefusal(c.name, `staging generation ${gen}`, r, c.fence)
  if (refused) throw refused
  if (r.code === 3) {
    const fails = r.stdout.split('\n@@check FAIL ').slice(1).map((b) => {
      const [head = '', ...rest] = b.split('\n')
      return `  ${head}: ${rest.join('\n').trim().split('\n').slice(0, 8).join('\n    ')}`
    })
    throw new HafwError(`${c.name}: the node's own tools reject the new files (nothing was changed):\n${fails.join('\n')}`)
  }
  if (r.code !== 0 || !/^staged$/m.test(r.stdout)) throw new HafwError(`${c.name}: staging generation ${gen} failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().split('\n').slice(-4).join(' ')}`)
  c.gen = gen
}

/** The node's conntrackd.conf, when it has one. */
export const conntrackdConfOf = (n: RenderedNode): string | undefined => n.files.find((f) => f.service === 'conntrackd' && f.check === 'conntrackd')?.path

/** conntrackd.conf when the pair syncs in a mode that can ask its peer for a resync (FTFW, NOTRACK). */
export function resyncConf(c: Pick<NodeCtx, 'target'>, pair: ApplyTarget): string | undefined {
  return pair.conntrack_sync && pair.conntrack_sync.mode !== 'alarm' ? conntrackdConfOf(c.target) : undefined
}

/** Remove a staged generation that will not be applied. */
export async function discard(c: NodeCtx): Promise<void> {
  if (c.gen === undefined) return
  await c.session.exec('sh -s', { input: discardScript(c.gen, c.plan.files, c.fence), timeoutMs: 30_000 }).catch(() => undefined)
}

export interface SwapResult {
  ok: boolean
  armed: boolean
  steps: { step: string; rc: number; ms: number }[]
  error?: string
}

/**
 * Arm the rollback timer, rename the staged files into place, run the services. `onPath`: the
 * script got past every step that changes the path to the node (swapScript's "@@path").
 */
export async function swap(c: NodeCtx, confirmTimeoutS: number, extraStart: string[], signal: AbortSignal, onPath?: () => void): Promise<SwapResult> {
  const start = [...new Set([...c.plan.start, ...extraStart])]
  const script = swapScript({ gen: c.gen!, confirmTimeoutS, changes: c.plan.files, steps: c.plan.steps, enable: c.plan.enable, start, fence: c.fence })
  c.armedAt = Date.now()
  let out = ''
  let code = -1
  // the markers are ASCII lines: latin1 text of the chunks so far finds them across chunk boundaries
  let seen: string | null = ''
  const watch = (b: Buffer) => {
    if (seen === null) return
    seen += b.toString('latin1')
    if (!/^@@path$/m.test(seen)) return
    seen = null
    onPath?.()
  }
  try {
    const r = await c.session.exec('sh -s', { input: script, timeoutMs: Math.max(30_000, (confirmTimeoutS - 5) * 1000), signal, onStdout: watch })
    out = r.stdout
    code = r.code
    // refused before the timer was armed: nothing changed
    const refused = fenceRefusal(c.name, `swapping in generation ${c.gen}`, r, c.fence)
    if (refused) return { ok: false, armed: false, steps: [], error: refused.message }
    if (code !== 0) out += `\n${r.stderr}`
  } catch (e) {
    return { ok: false, armed: true, steps: parseSteps(out), error: (e as Error).message }
  }
  const armed = /^@@armed$/m.test(out)
  const steps = parseSteps(out)
  if (code === 0 && /^@@done$/m.test(out)) return { ok: true, armed, steps }
  const failed = steps.find((s) => s.rc !== 0)
  const detail = out.split('\n').filter((l) => l && !l.startsWith('@@')).slice(-6).join(' | ')
  return { ok: false, armed, steps, error: failed ? `${failed.step} exited ${failed.rc}: ${detail}` : /@@fail (.*)/.exec(out)?.[1] ?? `exit ${code}: ${detail}` }
}

function parseSteps(out: string): SwapResult['steps'] {
  return [...out.matchAll(/^@@step (\S+) (\d+) (\d+)$/gm)].map((m) => ({ step: m[1]!, rc: Number(m[2]), ms: Number(m[3]) }))
}

/** Disarm and record; false when the timer had already rolled the generation back. */
export async function confirm(c: NodeCtx, pair: ApplyTarget, signal: AbortSignal): Promise<boolean> {
  const r = await c.session.exec('sh -s', { input: confirmScript(c.gen!, pair.firewall.backend, c.fence), timeoutMs: 30_000, signal })
  const refused = fenceRefusal(c.name, `confirming generation ${c.gen}`, r, c.fence)
  if (refused) throw refused
  if (r.code === 9) return false
  if (r.code !== 0) throw new HafwError(`${c.name}: confirming generation ${c.gen} failed (exit ${r.code}): ${r.stderr.trim()}`)
  return true
}

export interface RollbackReport {
  /** who ran it: hafw over the existing connection, or the node's own timer */
  trigger: 'hafw' | 'timer'
  ok: boolean
  /** the generation in force afterwards (null: the state before hafw) */
  current: number | null
  /** SSH works again through a new connection */
  reachable: boolean
  ms: number
  detail: string
}

const markerScript = (gen: number) =>
  `cat ${GENERATIONS}/${gen}/rolled-back 2>/dev/null || echo not-rolled-back; echo "@@current $(cat ${NODE_DIR}/current 2>/dev/null)"; tail -n 3 ${GENERATIONS}/${gen}/rollback.log 2>/dev/null`

/**
 * Run the generation's rollback now, as a systemd unit of its own (it finishes even if this
 * connection dies), and wait for it. `force` undoes a generation that was already confirmed.
 */
export async function rollbackNow(c: NodeCtx, opts: { force?: boolean } = {}): Promise<string> {
  const unit = `${timerUnit(c.gen!)}-now-${Date.now()}`
  const env = `${opts.force ? ' --setenv=HAFW_FORCE=1' : ''}${c.fence !== undefined ? ` --setenv=HAFW_FENCE=${c.fence}` : ''}`
  const r = await c.session.exec(`systemd-run --quiet --wait --unit=${unit}${env} /bin/sh ${q(`${GENERATIONS}/${c.gen}/rollback.sh`)}; ${markerScript(c.gen!)}`, { timeoutMs: 180_000 })
  return r.stdout
}

/** Read the rollback marker over a NEW connection, retrying until `untilMs`. */
export async function pollRolledBack(gen: number, reconnect: (fn: (s: Session) => Promise<string>) => Promise<string>, untilMs: number): Promise<{ out: string; reachable: boolean; error?: string }> {
  let error = ''
  for (;;) {
    try {
      const out = await reconnect((s) => s.exec(markerScript(gen), { timeoutMs: 15_000 }).then((r) => r.stdout))
      if (!/^not-rolled-back$/m.test(out) || Date.now() > untilMs) return { out, reachable: true }
    } catch (e) {
      error = (e as Error).message
      if (Date.now() > untilMs) return { out: '', reachable: false, error }
    }
    await new Promise((r) => setTimeout(r, 2000))
  }
}

export function parseMarker(out: string): { rolledBack: boolean; current: number | null } {
  const cur = /^@@current (\d*)$/m.exec(out)?.[1]
  return { rolledBack: !!out && !/^not-rolled-back$/m.test(out), current: cur ? Number(cur) : null }
}

/** A generation stored on the node, as a RenderedNode (for `hafw rollback --to`). */
export async function readGeneration(s: Session, name: string, gen: number): Promise<RenderedNode> {
  const D = `${GENERATIONS}/${gen}`
  const r = await s.exec(
    `test -f ${D}/manifest.json || exit 7; base64 -w0 ${D}/manifest.json; echo; cd ${D}/files && find . -type f | while read -r f; do printf '@@f %s\\n' "\${f#.}"; base64 -w0 "$f"; echo; done`,
    { timeoutMs: 60_000 },
  )
  if (r.code === 7) throw new HafwError(`${name}: generation ${gen} is not kept on the node (or was made before hafw recorded manifests)`)
  if (r.code !== 0) throw new HafwError(`${name}: reading generation ${gen} failed: ${r.stderr.trim()}`)
  const [m64 = '', ...rest] = r.stdout.split('\n')
  const man = JSON.parse(Buffer.from(m64, 'base64').toString('utf8')) as Manifest
  const content = new Map<string, string>()
  for (let i = 0; i < rest.length; i++) {
    const m = /^@@f (.+)$/.exec(rest[i]!)
    if (m) content.set(m[1]!, Buffer.from(rest[i + 1] ?? '', 'base64').toString('utf8'))
  }
  const files: RenderedFile[] = man.files.map((f) => {
    const c = content.get(f.path)
    if (c === undefined) throw new HafwError(`${name}: generation ${gen} lacks ${f.path}`)
    const sha = createHash('sha256').update(c, 'utf8').digest('hex')
    if (sha !== f.sha256) throw new HafwError(`${name}: generation ${gen}: ${f.path} does not match its recorded sha256 (changed on the node?)`)
    return { ...f, content: c }
  })
  return { node: man.node, ...(man.pair ? { pair: man.pair } : {}), kind: man.kind, profile: man.profile, site: man.site, files }
}
