import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { HafwError } from '@hafw/core'
import { familyOf, inSubnet, interfaceFor, parseAnyCidr, type AllowModel, type Family, type PairModel, type Proto } from '@hafw/inventory'
import type { LabProbe } from '@hafw/lab'
import { hostPort, type WitnessResult, type WitnessSpec, type WitnessStatus, type WitnessTarget } from './witness.js'

/*
 * Witness traffic from probe hosts: which flows cross the pair (the DNAT path: client -> VIP:port
 * -> server; the forwarded path: client -> server address, routed through the pair and allowed by
 * its filter), and the witness process running them in the client's network namespace.
 * A dual-stack pair with dual-stack probes gets witnesses of both families: IPv4 ones as before,
 * and IPv6 ones through its NAT66 DNAT rules and forwarded to the server's IPv6 address.
 */

export interface WitnessPlan {
  client: LabProbe
  targets: WitnessTarget[]
  /** what the witnesses are, for the report */
  describe: string
}

/**
 * Does the pair's forward filter let this flow through? Pure; mirrors the rendered FORWARD rules
 * (iptables and ip6tables, or the inet table): a rule is one family, so a rule with an IPv4
 * address never matches an IPv6 flow and the other way round; a rule without addresses is in
 * both rulesets and matches flows of either family.
 */
export function filterAllows(pair: PairModel, f: { in: string; out?: string; proto: Proto; src: string; dst: string; dport: number }): boolean {
  if (pair.filter.forward_policy === 'accept') return true
  const within = (ip: string, spec?: string) => {
    if (spec === undefined) return true
    if (familyOf(spec) !== familyOf(ip)) return false
    // the model and the lab hold IPv6 in canonical text: one address, one spelling
    if (!spec.includes('/')) return spec === ip
    const c = parseAnyCidr(spec)
    return typeof c !== 'string' && inSubnet(ip, c)
  }
  const match = (r: AllowModel) =>
    (r.in === undefined || r.in === f.in) &&
    (r.out === undefined || r.out === f.out) &&
    (r.proto === undefined || r.proto === f.proto) &&
    within(f.src, r.src) &&
    within(f.dst, r.dst) &&
    r.sport === undefined &&
    (r.dport === undefined || r.dport === f.dport)
  return pair.filter.allow.some(match)
}

/** Split n flows over the targets: evenly, the first targets take the remainder. */
function spread(targets: Omit<WitnessTarget, 'flows'>[], n: number): WitnessTarget[] {
  const k = Math.min(targets.length, n)
  return targets.slice(0, k).map((t, i) => ({ ...t, flows: Math.floor(n / k) + (i < n % k ? 1 : 0) }))
}

/**
 * The witness flows for a pair from the lab's probe hosts: the pair's client probe (the one in
 * drill.probes when set), DNAT rules on the client's segment whose target runs an echo
 * responder, and servers behind the pair reached directly on a port the filter allows. Returns
 * null, with the reason, when no flow can cross the pair.
 *
 * Of both families when the client has an IPv6 address: a DNAT rule to an IPv6 VIP (NAT66) whose
 * target is a server's IPv6 address, and forwarded flows to a server's IPv6 address whose IPv6
 * default route is a VIP of the pair. Each family's targets follow the IPv4 order (TCP first,
 * DNAT before forward), IPv4 then IPv6 within each kind, so flows split over both.
 */
export function planWitnesses(pair: PairModel, probes: LabProbe[], flows: number): WitnessPlan | { none: string } {
  const want = pair.drill.probes?.client.address
  const client = probes.find((p) => p.role === 'client' && p.pair === pair.name && (!want || p.ip === want))
  if (!client) return { none: `no probe client in front of pair ${pair.name}` }
  const vips = new Set(pair.vrrp.instances.flatMap((i) => i.vips.map((v) => v.ip)))
  const servers = probes.filter((p) => p.role === 'server' && p.running)
  const outOf = (ip: string) => interfaceFor(pair.nodes[0].interfaces, ip)?.name
  /** a probe's address of a family */
  const ipOf = (p: LabProbe, fam: Family) => (fam === 6 ? p.ip6 : p.ip)
  const gwOf = (p: LabProbe, fam: Family) => (fam === 6 ? p.gateway6 : p.gateway)
  const families: Family[] = client.ip6 ? [4, 6] : [4]
  const dnat = new Map<Family, Omit<WitnessTarget, 'flows'>[]>()
  const forward = new Map<Family, Omit<WitnessTarget, 'flows'>[]>()
  for (const fam of families) {
    const d: Omit<WitnessTarget, 'flows'>[] = []
    for (const r of pair.nat.dnat) {
      if (r.in !== client.segment || r.dport === undefined || (r.proto !== 'tcp' && r.proto !== 'udp') || familyOf(r.dst) !== fam) continue
      const port = r.to_port ?? r.dport
      if (servers.some((s) => ipOf(s, fam) === r.to && s.ports.includes(port))) d.push({ proto: r.proto, host: r.dst, port: r.dport, path: 'dnat' })
    }
    dnat.set(fam, d)
    const fwd: Omit<WitnessTarget, 'flows'>[] = []
    // Replies must come back through the pair too: the server's gateway is one of its VIPs.
    const behind = servers.filter((s) => s.segment !== client.segment && ipOf(s, fam) && gwOf(s, fam) && vips.has(gwOf(s, fam)!))
    const preferred = fam === 6 ? pair.drill.probes?.server.address6 : pair.drill.probes?.server.address
    behind.sort((a, b) => Number(ipOf(b, fam) === preferred) - Number(ipOf(a, fam) === preferred))
    for (const proto of ['tcp', 'udp'] as const) {
      for (const s of behind) {
        const dst = ipOf(s, fam)!
        const port = s.ports.find((p) => filterAllows(pair, { in: client.segment, out: outOf(dst), proto, src: ipOf(client, fam)!, dst, dport: p }))
        if (port !== undefined) {
          fwd.push({ proto, host: dst, port, path: 'forward' })
          break
        }
      }
    }
    forward.set(fam, fwd)
  }
  // TCP first (resets are what the race produces), DNAT before forward; IPv4, then IPv6, of each.
  const kind = (m: Map<Family, Omit<WitnessTarget, 'flows'>[]>, proto: 'tcp' | 'udp') => families.flatMap((fam) => m.get(fam)!.filter((t) => t.proto === proto))
  const order = [...kind(dnat, 'tcp'), ...kind(forward, 'tcp'), ...kind(dnat, 'udp'), ...kind(forward, 'udp')]
  const from = client.ip6 ? `${client.ip} or ${client.ip6}` : client.ip
  if (!order.length) return { none: `no witness path through pair ${pair.name}: no DNAT rule on ${client.segment} to a probe server, and the filter forwards no probe port from ${from}` }
  const targets = spread(order, flows)
  const describe = targets.map((t) => `${t.flows} ${t.proto.toUpperCase()} ${t.path === 'dnat' ? `through the DNAT on ${hostPort(t.host, t.port)}` : `forwarded to ${hostPort(t.host, t.port)}`}`).join(', ')
  return { client, targets, describe: `from ${client.ip6 ? `${client.ip} and ${client.ip6}` : client.ip} (${client.name}): ${describe}` }
}

/** dist/witness.js, from src/ (tests) and dist/ alike. */
export const WITNESS_JS = fileURLToPath(new URL('../dist/witness.js', import.meta.url))

/** A witness process in a probe's network namespace. */
export class ProbeWitness {
  private readonly child: ChildProcess
  private stdout = ''
  private stderr = ''
  private readonly exited: Promise<number | null>
  private readyWaiters: ((flows: { id: number; localPort?: number }[]) => void)[] = []
  private readyFlows: { id: number; localPort?: number }[] | undefined

  constructor(readonly probe: LabProbe, readonly spec: WitnessSpec) {
    this.child = spawn('ip', ['netns', 'exec', probe.netns, process.execPath, WITNESS_JS, JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'pipe'] })
    this.child.stdout!.on('data', (d: Buffer) => (this.stdout += d.toString()))
    this.child.stderr!.on('data', (d: Buffer) => {
      this.stderr += d.toString()
      const m = /^ready (.*)$/m.exec(this.stderr)
      if (m && !this.readyFlows) {
        this.readyFlows = JSON.parse(m[1]!) as { id: number; localPort?: number }[]
        for (const w of this.readyWaiters.splice(0)) w(this.readyFlows)
      }
    })
    this.exited = new Promise((res) => {
      this.child.on('exit', (code) => res(code))
      this.child.on('error', () => res(-1))
    })
  }

  /** Every flow had its first echo: their local ports. Null after timeoutMs. */
  ready(timeoutMs: number): Promise<{ id: number; localPort?: number }[] | null> {
    if (this.readyFlows) return Promise.resolve(this.readyFlows)
    return new Promise((res) => {
      const t = setTimeout(() => res(null), timeoutMs)
      this.readyWaiters.push((f) => (clearTimeout(t), res(f)))
      void this.exited.then(() => (clearTimeout(t), res(this.readyFlows ?? null)))
    })
  }

  /** The flows' status now (SIGUSR1 -> one `status` line); null when the witness does not answer in 2 s. */
  async status(): Promise<WitnessStatus | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return null
    const from = this.stderr.length
    this.child.kill('SIGUSR1')
    for (let i = 0; i < 40; i++) {
      const m = /^status (.*)$/m.exec(this.stderr.slice(from))
      if (m) return JSON.parse(m[1]!) as WitnessStatus
      await new Promise((r) => setTimeout(r, 50))
    }
    return null
  }

  /** Stop the flows (SIGTERM) and read the result. */
  async stop(): Promise<WitnessResult> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM')
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000)
    const code = await this.exited
    clearTimeout(timer)
    const line = this.stdout.trim().split('\n').pop() ?? ''
    try {
      return JSON.parse(line) as WitnessResult
    } catch {
      throw new HafwError(`witness in ${this.probe.netns} ended (exit ${code}) without a result: ${(this.stderr || this.stdout).trim().slice(-500)}`)
    }
  }

  /** Stop without waiting for a result (cleanup after an error). */
  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL')
  }
}
