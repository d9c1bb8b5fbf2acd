/** The result of a failover drill: what `hafw drill --json` prints and the HTML report draws. */

export type DrillMode = 'graceful' | 'crash' | 'link' | 'partition'

export interface TimelineEvent {
  /** trigger | standby_master | vips_moved | commit_started | commit_finished | first_packet |
   *  converged | fault_cleared | ... */
  event: string
  node: string
  /** epoch ms, corrected to the controller's clock (offsets measured per node) */
  t: number
  detail?: string
}

export interface FlowSummary {
  id: number
  proto: 'tcp' | 'udp'
  /** IP family of the flow; absent in reports from before IPv6 witnesses (IPv4 then) */
  family?: 4 | 6
  /** "dnat" (through a VIP's DNAT rule) or "forward" (routed through the pair) */
  path: string
  /** "192.168.10.60:25", "[fd00:10::60]:25" */
  target: string
  sent: number
  received: number
  lost: number
  max_gap_ms: number
  gap_start: number
  gap_end: number
  reset: boolean
  error?: string
}

/** Witness flows of one IP family in a phase. */
export interface FamilyFlows {
  total: number
  kept: number
  reset: number
  lost_messages: number
  /** that family's worst data-plane gap (as gap_ms: UDP's, else TCP's) */
  gap_ms: number | null
}

export type ByFamily = { ipv4?: FamilyFlows; ipv6?: FamilyFlows }

export interface PhaseResult {
  /** "failover" or "failback" */
  phase: string
  from: string
  to: string
  failover_ms: number | null
  /** worst data-plane gap of any witness flow */
  gap_ms: number | null
  commit: { entries: number | null; ms: number | null }
  flows: { total: number; kept: number; reset: number; lost_messages: number }
  /** the same counts per IP family of the witness flows (only the families present) */
  by_family?: ByFamily
  per_flow: FlowSummary[]
  timeline: TimelineEvent[]
  /** verify after the phase */
  converged: boolean | null
  bound_ms: number
}

export interface DrillResult {
  id: string
  pair: string
  site: string
  kind: 'firewall' | 'loadbalancer'
  mode: DrillMode
  started_at: string
  ended_at: string
  verdict: 'pass' | 'fail'
  reasons: string[]
  notes: string[]
  /** the failover phase, flattened at the top level as the JSON contract asks */
  flows: { total: number; kept: number; reset: number }
  /** the failover's flows per IP family (ipv4, ipv6: those present) */
  flows_by_family?: ByFamily
  gap_ms: number | null
  failover_ms: number | null
  commit: { entries: number | null; ms: number | null }
  timeline: TimelineEvent[]
  failover: PhaseResult
  failback: PhaseResult | null
  /** node clock offsets measured against the controller, ms (node - controller) */
  clock_offsets_ms: Record<string, number>
  witnesses: 'probes' | 'live-flows'
}
