import type { FlowSummary } from './types.js'
import { familyOfHost, hostPort } from './witness.js'

/*
 * Without probe hosts the pair's own traffic is the witness: the TCP flows ESTABLISHED through
 * the active node before the trigger (forwarded ones only: not to or from the node itself).
 * After the failover hafw looks them up on the new active node with conntrack accounting on
 * (turned on there for the drill): a flow that carries packets there survived; one in CLOSE
 * state, or gone, did not. A flow with no packets yet is idle, not lost. Both families: the
 * tables are read with `conntrack -L -f ipv4` and `-f ipv6`, whose lines look alike.
 */

export interface LiveFlow {
  src: string
  dst: string
  sport: number
  dport: number
  state: string
  /** packets both ways (accounting on), else null */
  packets: number | null
  /** reply direction's source: who answers (the real server behind a DNAT) */
  replySrc: string
}

const key = (f: Pick<LiveFlow, 'src' | 'dst' | 'sport' | 'dport'>) => `${f.src}:${f.sport}>${f.dst}:${f.dport}`

/** `conntrack -L -p tcp` text lines, IPv4 or IPv6 (addresses as conntrack prints them: canonical). Pure. */
export function parseConntrackTcp(text: string): LiveFlow[] {
  const out: LiveFlow[] = []
  for (const line of text.split('\n')) {
    const m = /^tcp\s+6\s+\d+\s+(\S+)\s+(.*)$/.exec(line.trim())
    if (!m) continue
    const kv = [...m[2]!.matchAll(/(\w+)=(\S+)/g)].map((x) => [x[1]!, x[2]!] as const)
    const all = (k: string) => kv.filter(([n]) => n === k).map(([, v]) => v)
    const [src, rsrc] = all('src')
    const [dst] = all('dst')
    const [sport] = all('sport')
    const [dport] = all('dport')
    if (!src || !dst || !sport || !dport || !rsrc) continue
    const packets = all('packets')
    out.push({ src, dst, sport: Number(sport), dport: Number(dport), state: m[1]!, packets: packets.length ? packets.reduce((a, p) => a + Number(p), 0) : null, replySrc: rsrc })
  }
  return out
}

/** Forwarded, established flows: neither end is an address of the node (VIPs included). */
export function witnessFlows(flows: LiveFlow[], local: Set<string>, max: number): LiveFlow[] {
  return flows.filter((f) => f.state === 'ESTABLISHED' && !local.has(f.src) && !local.has(f.replySrc)).slice(0, max)
}

export interface LiveOutcome {
  per_flow: FlowSummary[]
  total: number
  carrying: number
  idle: number
  reset: number
}

/** What became of the witnesses on the new active node. Pure. */
export function judgeLive(before: LiveFlow[], after: LiveFlow[]): LiveOutcome {
  const now = new Map(after.map((f) => [key(f), f]))
  let carrying = 0
  let idle = 0
  let reset = 0
  const per_flow = before.map((b, id): FlowSummary => {
    const a = now.get(key(b))
    const gone = !a || a.state === 'CLOSE'
    if (gone) reset++
    else if ((a.packets ?? 0) > 0) carrying++
    else idle++
    return {
      id,
      proto: 'tcp',
      family: familyOfHost(b.src),
      path: 'live',
      target: `${hostPort(b.src, b.sport)} -> ${hostPort(b.dst, b.dport)}`,
      sent: a?.packets ?? 0,
      received: a?.packets ?? 0,
      lost: 0,
      max_gap_ms: 0,
      gap_start: 0,
      gap_end: 0,
      reset: gone,
      ...(gone ? { error: a ? `${a.state} on the new active node` : "not in the new active node's table" } : {}),
    }
  })
  return { per_flow, total: before.length, carrying, idle, reset }
}
