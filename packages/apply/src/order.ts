import { HafwError } from '@hafw/core'
import type { PairModel } from '@hafw/inventory'
import { parseAddrs, vipHolders } from '@hafw/verify'

/*
 * Which node of a pair goes first. Pure: from who holds the VIPs now (`ip -o addr` of each
 * node) and which nodes have changes.
 */

export interface OrderDecision {
  /** nodes to update, in order: the standby first */
  order: string[]
  /** the node holding the VIPs now; null on a fresh pair (nobody does) */
  active: string | null
  /** fail over to the updated standby before the active node is touched */
  handover: boolean
  why: string
}

export function decideOrder(pair: PairModel, addrs: Record<string, string>, changed: string[], handover: boolean): OrderDecision {
  const ips = Object.fromEntries(pair.nodes.map((n) => [n.name, parseAddrs(addrs[n.name] ?? '')]))
  const holders = [...new Set(vipHolders(pair, ips).flatMap((i) => i.vips.flatMap((v) => v.holders)))]
  if (holders.length > 1) {
    throw new HafwError(`pair ${pair.name}: both ${holders.join(' and ')} hold VIPs (split brain); refusing to roll out until one node holds them all`)
  }
  const active = holders[0] ?? null
  // Standby first; on a fresh pair the node that will not be master (lowest priority) first.
  const byRisk = [...pair.nodes].sort((a, b) => (a.name === active ? 1 : b.name === active ? -1 : a.priority - b.priority))
  const order = byRisk.map((n) => n.name).filter((n) => changed.includes(n))
  const why = active ? `${active} holds the VIPs: ${order.join(' then ')}` : `no node holds the VIPs yet: lowest priority first (${order.join(' then ')})`
  // A handover only matters when the active node changes; the peer takes over whether or not it changed.
  const doHandover = handover && active !== null && changed.includes(active)
  return { order, active, handover: doHandover, why: doHandover ? `${why}, handing over to ${pair.nodes.find((n) => n.name !== active)!.name} before ${active} is touched` : why }
}
