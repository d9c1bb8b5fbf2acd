import { createTwoFilesPatch } from 'diff'
import { manifest, SERVICE_ORDER, type Action, type RenderedNode, type Service } from '@hafw/render'
import { LIVE_KINDS, type LiveKind, type NodeState } from './remote.js'

/*
 * Plan: what apply would do to one node, computed from the rendered files and what the node
 * has. Pure: no I/O here (remote.ts reads, this decides).
 */

export interface FileChange {
  path: string
  change: 'create' | 'update' | 'metadata'
  service: Service
  action: Action
  sha256: string
  mode: string
  owner: string
  /** what the node has now, when the file exists */
  from?: { mode: string; owner: string }
  /** unified diff, empty for a metadata-only change */
  diff: string
}

export interface ServiceStep {
  service: Service
  action: Action
  command: string[]
  /** the changed files (or "drift") that call for it */
  because: string[]
}

export interface Drift {
  kind: LiveKind
  /** unified diff from what the last apply recorded to what the node has now */
  diff: string
}

export interface NodePlan {
  node: string
  pair: string | null
  /** generation on the node now (null: hafw never applied there) */
  generation: number | null
  files: FileChange[]
  unchanged: number
  /** in apply order; empty when nothing needs running */
  steps: ServiceStep[]
  /** units to enable (reboot survival) and to start (not running now, e.g. a fresh node) */
  enable: string[]
  start: string[]
  /** live state that differs from what the last apply recorded (null: nothing recorded) */
  drift: Drift[] | null
  /** whether apply has anything to do on this node */
  changes: boolean
}

const octal = (m: string) => parseInt(m, 8)

export function unifiedDiff(path: string, before: string, after: string, labels: [string, string] = [`a${path}`, `b${path}`]): string {
  if (before === after) return ''
  const p = createTwoFilesPatch(labels[0], labels[1], before, after, '', '', { context: 3 })
  // Drop the "=====" banner and empty timestamps: plain `diff -u` style.
  return p.replace(/^=+\n/m, '').replace(/^(---|\+\+\+) (\S+)\t$/gm, '$1 $2')
}

/** Which (service, action) runs: restart wins over reload for the same service. Pure. */
export function orderSteps(wanted: { service: Service; action: Action; because: string }[], commands: (s: Service, a: Action) => string[] | undefined): ServiceStep[] {
  const steps: ServiceStep[] = []
  for (const service of SERVICE_ORDER) {
    const mine = wanted.filter((w) => w.service === service && w.action !== 'none')
    if (!mine.length) continue
    const actions = new Set(mine.map((w) => w.action))
    const action: Action = actions.has('restart') ? 'restart' : actions.has('run') ? 'run' : 'reload'
    const command = commands(service, action)
    if (!command) continue
    steps.push({ service, action, command, because: [...new Set(mine.map((w) => w.because))] })
  }
  return steps
}

/** Plan one node. */
export function planNode(n: RenderedNode, st: NodeState): NodePlan {
  const m = manifest(n)
  const files: FileChange[] = []
  let unchanged = 0
  for (const f of n.files) {
    const cur = st.files[f.path]
    const base = { path: f.path, service: f.service, action: f.action, sha256: f.sha256, mode: f.mode, owner: f.owner }
    if (!cur?.exists) {
      files.push({ ...base, change: 'create', diff: unifiedDiff(f.path, '', f.content, ['/dev/null', `b${f.path}`]) })
    } else if (cur.content !== f.content) {
      files.push({ ...base, change: 'update', from: { mode: cur.mode!, owner: cur.owner! }, diff: unifiedDiff(f.path, cur.content ?? '', f.content) })
    } else if (octal(cur.mode ?? '0') !== octal(f.mode) || cur.owner !== f.owner) {
      files.push({ ...base, change: 'metadata', from: { mode: cur.mode!, owner: cur.owner! }, diff: '' })
    } else unchanged++
  }
  let drift: Drift[] | null = null
  if (st.recorded) {
    drift = []
    for (const kind of LIVE_KINDS) {
      const d = unifiedDiff(kind, st.recorded[kind], st.live[kind], [`recorded/${kind}`, `live/${kind}`])
      if (d) drift.push({ kind, diff: d })
    }
  }
  const wanted = files.filter((f) => f.change !== 'metadata').map((f) => ({ service: f.service, action: f.action, because: f.path }))
  // Drift is repaired by loading the rendered state again: the ruleset by the firewall loader,
  // routes and rules by the routing script (when the node has one).
  for (const d of drift ?? []) {
    const service: Service = d.kind === 'ruleset' ? 'firewall' : 'routing'
    if (m.services.some((s) => s.service === service)) wanted.push({ service, action: 'run', because: `drift in ${d.kind}` })
  }
  const steps = orderSteps(wanted, (s, a) => m.services.find((x) => x.service === s)?.commands[a])
  const enable = m.enable.filter((u) => st.units[u]?.enabled !== 'enabled')
  const start = m.enable.filter((u) => st.units[u]?.active !== 'active')
  return {
    node: n.node,
    pair: n.pair ?? null,
    generation: st.generation,
    files,
    unchanged,
    steps,
    enable,
    start,
    drift,
    changes: files.length > 0 || steps.length > 0 || enable.length > 0 || start.length > 0,
  }
}

export interface PlanSummary {
  nodes: number
  nodesChanging: number
  files: number
  services: string[]
  drift: number
  changes: boolean
}

export function summarize(plans: NodePlan[]): PlanSummary {
  return {
    nodes: plans.length,
    nodesChanging: plans.filter((p) => p.changes).length,
    files: plans.reduce((a, p) => a + p.files.length, 0),
    services: plans.flatMap((p) => p.steps.map((s) => `${p.node}:${s.service}/${s.action}`)),
    drift: plans.reduce((a, p) => a + (p.drift?.length ?? 0), 0),
    changes: plans.some((p) => p.changes),
  }
}

/** One line per node: what changes. */
export function describeNode(p: NodePlan): string {
  if (!p.changes) return 'no changes'
  const parts: string[] = []
  if (p.files.length) parts.push(`${p.files.length} file${p.files.length > 1 ? 's' : ''} (${p.files.map((f) => f.path.split('/').pop()).join(', ')})`)
  if (p.steps.length) parts.push(p.steps.map((s) => `${s.service} ${s.action}`).join(', '))
  if (p.enable.length) parts.push(`enable ${p.enable.join(' ')}`)
  if (p.start.length) parts.push(`start ${p.start.join(' ')}`)
  return parts.join('; ')
}

/** The terminal form: per node its diffs, drift, the steps apply would run; then a summary. */
export function formatPlan(plans: NodePlan[]): string {
  const out: string[] = []
  for (const p of plans) {
    out.push(`=== ${p.node}${p.pair ? ` (pair ${p.pair})` : ''}, generation ${p.generation ?? 'none'}: ${describeNode(p)}`)
    for (const f of p.files) {
      if (f.change === 'metadata') out.push(`~ ${f.path}: mode/owner ${f.from?.mode} ${f.from?.owner} -> ${f.mode} ${f.owner}`)
      else out.push(f.diff.trimEnd())
    }
    for (const d of p.drift ?? []) out.push(`! drift in the live ${d.kind} since the last apply:`, d.diff.trimEnd())
    for (const s of p.steps) out.push(`> ${s.command.join(' ')}   (${s.service} ${s.action}: ${s.because.join(', ')})`)
    if (p.enable.length) out.push(`> systemctl enable ${p.enable.join(' ')}`)
    if (p.start.length) out.push(`> systemctl start ${p.start.join(' ')}`)
  }
  const s = summarize(plans)
  out.push(
    s.changes
      ? `plan: ${s.nodesChanging}/${s.nodes} node(s) change, ${s.files} file(s), ${s.services.length} service action(s)${s.drift ? `, drift in ${s.drift} live state(s)` : ''}`
      : `plan: no changes on ${s.nodes} node(s)${s.drift ? ` (drift in ${s.drift} live state(s) without a loader to repair it)` : ''}`,
  )
  return out.join('\n')
}
