import type { PairModel } from '@hafw/inventory'
import type { DrillMode } from './types.js'

/*
 * How long the data plane may stop in a drill before the verdict fails. VRRP fixes the bound:
 * a backup takes over after its skew time when the master says goodbye (priority 0 advert, a
 * graceful stop), and after the master-down interval (3 x advert_int + skew) when the master
 * just goes silent (crash, a dead link, lost adverts). The margin covers what follows the
 * VIPs: gratuitous ARPs reaching the neighbours, TCP's retransmission timer, the commit.
 */

/** Added to the VRRP interval of every mode unless the inventory sets drill.max_gap_ms. */
export const DEFAULT_MARGIN_MS = 500

/** keepalived's skew time of a backup with this priority (VRRPv2 and v3 alike): ((256 - p) / 256) x advert_int. */
export function skewMs(advertIntS: number, priority: number): number {
  return Math.round(((256 - priority) / 256) * advertIntS * 1000)
}

/** The master-down interval the backup waits before it takes over from a silent master. */
export function masterDownMs(advertIntS: number, priority: number): number {
  return Math.round(3 * advertIntS * 1000) + skewMs(advertIntS, priority)
}

export interface GapBound {
  ms: number
  /** how it was derived, for the report */
  why: string
}

/** The gap allowed when `takeover` becomes master in this mode (inventory drill.max_gap_ms wins). */
export function gapBound(pair: PairModel, mode: DrillMode, takeover: string): GapBound {
  const set = pair.drill.max_gap_ms[mode]
  if (set !== undefined) return { ms: set, why: `${mode} bound: drill.max_gap_ms.${mode} of pair ${pair.name} (${set} ms)` }
  const node = pair.nodes.find((n) => n.name === takeover) ?? pair.nodes[0]
  const adv = pair.vrrp.advert_int
  const skew = skewMs(adv, node.priority)
  if (mode === 'graceful') return { ms: skew + DEFAULT_MARGIN_MS, why: `graceful bound: skew time of ${node.name} (${skew} ms) + ${DEFAULT_MARGIN_MS} ms margin` }
  return {
    ms: masterDownMs(adv, node.priority) + DEFAULT_MARGIN_MS,
    why: `${mode} bound: 3 x advert_int (${adv * 1000} ms) + skew time of ${node.name} (${skew} ms) + ${DEFAULT_MARGIN_MS} ms margin`,
  }
}

/** The --help / README text on the bounds. */
export const BOUNDS_HELP = `Data-plane gap: the worst stall of a UDP witness (the path's outage; TCP flows stall up to one retransmission timeout longer, reported per flow). Bounds by default:
  graceful: skew time of the node taking over + ${DEFAULT_MARGIN_MS} ms
  crash, link, partition: 3 x advert_int + skew time + ${DEFAULT_MARGIN_MS} ms
with skew time = (256 - priority) / 256 x advert_int (keepalived). Per pair, inventory drill.max_gap_ms.{graceful,crash,link,partition} (ms) replaces them.`
