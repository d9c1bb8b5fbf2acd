import { dirname } from 'node:path'
import { HafwError, mapLimit, reporter, throwIfAborted, type Operation } from '@hafw/core'
import type { HostModel, Model, NodeModel, PairModel } from '@hafw/inventory'
import { manifest, renderInventory, type RenderedNode } from '@hafw/render'
import { connect, type ConnectOptions, type Session } from '@hafw/transport'
import { planNode, summarize, type NodePlan, type PlanSummary } from './plan.js'
import { readNodeState, type NodeState } from './remote.js'

export interface PlanInput {
  model: Model
  /** only this pair (or `hosts:` entry) */
  pair?: string
  /** record unknown host keys instead of refusing them */
  acceptNew?: boolean
  /** nodes read at once (default 16) */
  parallel?: number
}

export interface PlanResult {
  nodes: NodePlan[]
  /** nodes that could not be read: the plan is incomplete */
  errors: { node: string; pair: string; error: string }[]
  summary: PlanSummary
  ms: number
}

/** The paths and units a read of this node needs. */
export function readSpec(n: RenderedNode): { paths: string[]; units: string[] } {
  return { paths: n.files.map((f) => f.path), units: manifest(n).enable }
}

/** Open the one SSH connection an operation uses for a node. */
export function openNode(model: Pick<Model, 'source'>, node: Pick<NodeModel, 'name' | 'ssh'>, opts: Pick<ConnectOptions, 'acceptNew' | 'signal' | 'progress'> = {}): Promise<Session> {
  return connect(node.ssh, { name: node.name, baseDir: dirname(model.source), ...opts })
}

/** Read and plan one node (of a pair, or a host) over an open session. */
export async function planOverSession(s: Session, owner: Pick<PairModel, 'firewall'>, n: RenderedNode, signal?: AbortSignal): Promise<{ plan: NodePlan; state: NodeState }> {
  const { paths, units } = readSpec(n)
  const state = await readNodeState(s, paths, units, owner.firewall.backend, signal)
  return { plan: planNode(n, state), state }
}

/**
 * `hafw plan`: read every selected node (one connection, one command each) and say what apply
 * would change. No side effects on the nodes.
 */
export const planInventory: Operation<PlanInput, PlanResult> = async (input, progress, signal) => {
  const t0 = Date.now()
  const { model } = input
  const host = (name: string) => model.hosts.find((h) => h.name === name)
  const only = input.pair
  if (only && !model.pairs.some((p) => p.name === only) && !host(only)) {
    throw new HafwError(`${model.source}: no pair or host named "${only}" (pairs: ${model.pairs.map((p) => p.name).join(', ') || 'none'}; hosts: ${model.hosts.map((h) => h.name).join(', ') || 'none'})`)
  }
  const rendered = renderInventory(model, only ? (host(only) && !model.pairs.some((p) => p.name === only) ? { node: only } : { pair: only }) : {})
  if (!rendered.length) throw new HafwError(`${model.source}: no pair or host to plan`)
  const errors: PlanResult['errors'] = []
  const plans = await mapLimit(rendered, input.parallel ?? 16, async (n) => {
    throwIfAborted(signal)
    // a pair's node, or a `hosts:` entry (its own owner)
    const pair = n.pair ? model.pairs.find((p) => p.name === n.pair)! : host(n.node)!
    const node = n.pair ? (pair as PairModel).nodes.find((x) => x.name === n.node)! : (pair as HostModel)
    const log = reporter(progress, n.pair ? `${pair.name}/${node.name}` : node.name)
    try {
      const s = await openNode(model, node, { acceptNew: input.acceptNew, signal, progress })
      try {
        const { plan } = await planOverSession(s, pair, n, signal)
        log.debug(`generation ${plan.generation ?? 'none'}: ${plan.files.length} file(s) change`)
        return plan
      } finally {
        await s.close()
      }
    } catch (e) {
      if (signal.aborted) throw e
      errors.push({ node: node.name, pair: pair.name, error: (e as Error).message })
      log.error((e as Error).message)
      return null
    }
  })
  const nodes = plans.filter((p): p is NodePlan => p !== null)
  return { nodes, errors, summary: summarize(nodes), ms: Date.now() - t0 }
}
