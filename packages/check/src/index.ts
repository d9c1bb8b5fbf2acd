import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { HafwError, reporter, throwIfAborted, type Operation } from '@hafw/core'
import type { Iface, Model } from '@hafw/inventory'
import { renderInventory, type RenderedNode, type RenderOptions } from '@hafw/render'
import { CHECKERS, checkOrder, stopConntrackd, tmp, type Ctx, type Verdict } from './checks.js'
import { createNetns } from './netns.js'

export type { Verdict } from './checks.js'
export { isolateConntrackd } from './checks.js'

export interface FileCheck extends Verdict {
  node: string
  pair: string | null
  path: string
  ms: number
}

export interface CheckResult {
  ok: boolean
  files: FileCheck[]
  failed: number
}

export interface CheckInput extends RenderOptions {
  model: Model
}

/** Everything `check` does needs network namespaces. */
export function requireRoot(): void {
  if (process.getuid?.() !== 0) {
    throw new HafwError(
      'hafw check needs root: it proves each file inside a throwaway network namespace (ip netns) with the node\'s interface names, ' +
        'so rulesets, routes, sysctls and conntrackd never touch this host. Run it as root (e.g. sudo).',
      { exitCode: 2 },
    )
  }
}

function interfacesOf(model: Model, n: RenderedNode): Iface[] {
  const pair = model.pairs.find((p) => p.name === n.pair)
  const node = pair ? pair.nodes.find((x) => x.name === n.node) : model.hosts.find((h) => h.name === n.node)
  if (!node) throw new HafwError(`internal: rendered node ${n.node} is not in the model`)
  return Object.values(node.interfaces)
}

/** Prove one node's files; every namespace, process and temporary file is gone afterwards. */
async function checkNode(model: Model, n: RenderedNode, signal: AbortSignal, onFile: (f: FileCheck) => void): Promise<FileCheck[]> {
  const root = await mkdtemp(join(tmpdir(), `hafw-check-${n.node}-`))
  const ns = await createNetns(interfacesOf(model, n)).catch(async (e: unknown) => {
    await rm(root, { recursive: true, force: true })
    throw e
  })
  const ctx: Ctx = { ns, root, files: n.files }
  const results = new Map<string, FileCheck>()
  try {
    for (const f of n.files) {
      await mkdir(dirname(tmp(ctx, f.path)), { recursive: true })
      await writeFile(tmp(ctx, f.path), f.content)
      await chmod(tmp(ctx, f.path), parseInt(f.mode, 8))
    }
    for (const f of [...n.files].sort((a, b) => checkOrder(a) - checkOrder(b))) {
      throwIfAborted(signal)
      const t0 = Date.now()
      let v: Verdict
      try {
        v = await CHECKERS[f.check](ctx, f)
      } catch (e) {
        v = { ok: false, tool: f.check, message: (e as Error).message }
      }
      // the tools name the temporary copy; show the path on the node instead
      const local = (t: string) => t.split(`${root}/`).join('/')
      const r: FileCheck = { node: n.node, pair: n.pair ?? null, path: f.path, ms: Date.now() - t0, ...v, message: local(v.message), ...(v.detail ? { detail: local(v.detail) } : {}) }
      results.set(f.path, r)
      onFile(r)
    }
  } finally {
    await stopConntrackd(ctx).catch(() => {})
    await ns.remove()
    await rm(root, { recursive: true, force: true })
  }
  return n.files.map((f) => results.get(f.path)!)
}

/** Render and prove every selected node's files with the real tools. */
export const checkInventory: Operation<CheckInput, CheckResult> = async (input, progress, signal) => {
  const { model, ...opts } = input
  return checkRendered({ model, nodes: renderInventory(model, opts) }, progress, signal)
}

/** Prove already rendered nodes (plan and apply check exactly what they are about to push). */
export const checkRendered: Operation<{ model: Model; nodes: RenderedNode[] }, CheckResult> = async ({ model, nodes }, progress, signal) => {
  requireRoot()
  const log = reporter(progress)
  const files: FileCheck[] = []
  for (const [k, n] of nodes.entries()) {
    log.info(`checking ${n.node}: ${n.files.length} files`, k / nodes.length)
    files.push(...(await checkNode(model, n, signal, (f) => log.scoped(n.node).debug(`${f.ok ? 'ok' : 'FAIL'} ${f.path} (${f.tool})`))))
  }
  const failed = files.filter((f) => !f.ok).length
  return { ok: failed === 0, files, failed }
}

/** "ok   node  path  tool: message", the tool's output indented below a failure. */
export function formatCheck(r: CheckResult): string {
  const w = Math.max(...r.files.map((f) => f.node.length), 4)
  const p = Math.max(...r.files.map((f) => f.path.length), 4)
  const out: string[] = []
  for (const f of r.files) {
    out.push(`${f.ok ? 'ok  ' : 'FAIL'}  ${f.node.padEnd(w)}  ${f.path.padEnd(p)}  ${f.tool}: ${f.message}`)
    if (!f.ok && f.detail) out.push(...f.detail.split('\n').slice(0, 20).map((l) => `        ${l}`))
  }
  out.push(r.ok ? `${r.files.length} files checked, all passed` : `${r.files.length} files checked, ${r.failed} failed`)
  return out.join('\n')
}
