/**
 * An independent check of the drill's figures: packet captures of the witness flows, read back here.
 * Root; ~4 min (lab boot, apply, two drills).
 *
 *   npx tsc -b packages/cli && npx tsx bench/drill-capture.ts     # FLOWS=20 FAILBACK=1 ROUNDS=1
 *
 * Needs tcpdump (`apt-get install -y tcpdump`; the bench installs it when it is missing).
 * inventory/lab.yaml's firewall pair edge1 (own site, own state dir) is booted by the lab and
 * configured with `hafw apply`. Then one graceful and one crash drill (runDrillJob, with failback
 * unless FAILBACK=0, force as in bench/race.ts), FLOWS witness flows (a quarter each: TCP through
 * the DNAT, TCP forwarded, UDP through the DNAT, UDP forwarded; a message every 20 ms). During each
 * drill tcpdump runs in the probe client's and the probe server's network namespaces (-i any, the
 * witnesses' client address only); the pcaps are read here (classic pcap, Ethernet / Linux cooked
 * v1 and v2, IPv4, TCP, UDP) and compared with what the drill reported, phase by phase:
 *
 * - gap: the drill's gap is the witness's: the worst time between two consecutive echoes the
 *   client received (an echo: a UDP datagram with a new sequence number; for TCP, in-order bytes
 *   that complete a line, as node's 'data' event hands them over). The comparable capture figure
 *   is the same thing at the client's interface: echoes from the flow's target to the client's
 *   port, TCP reassembled in order (a retransmission of bytes already delivered is no echo),
 *   duplicate UDP datagrams ignored. A phase owns the gaps overlapping [its trigger, the next
 *   phase's trigger), as packages/drill/src/analyze.ts cuts them. Checked: within 50 ms.
 *   The server's capture gives the forward path's stall (requests arriving at the server); it is
 *   printed for information only (a broken return path stalls the client, not the server).
 * - resets: the drill counts a flow reset when its socket saw ECONNRESET/EPIPE or the peer closed.
 *   The capture counts a flow reset when a RST (or a FIN from the far end) of the flow reached the
 *   client inside the phase. Checked per flow and per phase: exact.
 * Flows are matched by 5-tuple: the client capture's (proto, client port, target) carries the
 * witness's flow id in its first message ("id:seq\n"), which is the drill's per_flow id; the
 * server capture is matched on (proto, client address, client port).
 * tcpdump is stopped by PID after each drill; a capture that dropped packets fails the check.
 *
 * Also printed, from the capture only: the stall of the client's own UDP sends (the witness
 * process not sending: CPU starvation, not the network), the UDP loss span (the outage as the
 * sender met it: from the last message that came back to the next one, across lost ones), which
 * firewall (source MAC) delivered the echoes and when that changed, and the stall across that move.
 *
 * Measured here (2 cores, two busy loops of our own, load 3-5; FLOWS=20, with failback; 3 runs of
 * ROUNDS=3: 9 graceful + 9 crash drills, all verdict pass, 0 of 20 flows reset anywhere, every
 * comparison PASS; report gap_ms vs the capture's worst UDP gap, ms):
 *   graceful failover 58/47, 57/57, 54/50, 74/70, 41/32, 44/37, 41/36, 45/36, 42/39
 *            failback 56/49, 37/37, 63/46, 51/44, 42/35, 38/38, 37/35, 33/33, 39/33
 *   crash    failover 2670/2670, 3592/3594, 3276/3256, 3160/3157, 3614/3613, 2793/2792,
 *            3203/3205, 2777/2777, 2830/2828; failback 68/47, 44/37, 48/48, 48/48, 44/39,
 *            39/36, 41/39, 41/39, 38/35
 *   The drill is -2..+21 ms off the wire (it also counts its own late reads); resets 0 = RSTs 0.
 *   Witness stalls: the wire saw none in 29 of 36 phases, 1-4 in the other 7 (worst 54-104 ms);
 *   the drill's notes (read in 2 of the runs, 24 phases) named the same 5 phases there, -1..+11 ms
 *   off (once 2 vs 1: the tick can come 50 ms apart while the sends pause under 50 ms).
 *   Graceful gap_ms is still seldom the move's own stall: the stall across the move was 22-50 ms
 *   UDP (once 76 ms: that flow's own sends 76 ms apart, a sender stall both rules leave out), and
 *   17 of the 18 gap_ms lay seconds away from the move. They are now 33-74 ms (before the stall
 *   rule: up to 195 ms); in the last run, at the worst gap the flow's own sends were as far apart
 *   (33-39 ms) while the others kept sending (all-flows gap 15-35 ms): one flow's timer late,
 *   which no whole-process stall rule catches; no message was lost (no UDP loss span).
 * tcpdump --immediate-mode dropped packets under this load (the drop check failed the run): not used.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parse, stringify } from 'yaml'
import { exec, sleep, stderrProgress, which } from '@hafw/core'
import { DEFAULTS, explainedByWitnessStall, masterDownMs, runDrillJob, type DrillMode, type DrillResult, type FlowSummary, type PhaseResult } from '@hafw/drill'
import { loadInventory } from '@hafw/inventory'
import { labDown, labExec, labProbes, labUp, type LabProbe } from '@hafw/lab'
import { stopEmbeddedRedis } from '@hafw/queue'
import { runBench } from './run.js'

const FLOWS = Number(process.env.FLOWS ?? 20)
const FAILBACK = process.env.FAILBACK !== '0'
const ROUNDS = Number(process.env.ROUNDS ?? 1)
const MODES: DrillMode[] = ['graceful', 'crash']
const TOLERANCE_MS = 50
/** the witness's gapMinMs: stalls at least this long are listed (1.5 x the interval) */
const GAP_MIN_MS = Math.round(1.5 * DEFAULTS.intervalMs)
/** the whole bench, lab boot included */
const LIMIT_MS = Number(process.env.LIMIT_S ?? 1500) * 1000
const SITE = `cap${process.pid}`
const PAIR = 'edge1'
const NODES = ['fw1a', 'fw1b']

const dir = mkdtempSync(join(tmpdir(), 'hafw-capture-'))
const stateDir = join(dir, 'state')
const pcapDir = join(dir, 'pcap')
const file = join(dir, 'lab.yaml')
process.env.HAFW_STATE_DIR = stateDir

// ---------------------------------------------------------------------------------------------
// A classic pcap reader: global header, record headers, link layer, IPv4, TCP/UDP.

interface Packet {
  /** epoch ms (fractional) */
  t: number
  proto: 'tcp' | 'udp'
  src: string
  dst: string
  sport: number
  dport: number
  /** TCP only */
  seq: number
  flags: number
  /** transport payload as captured, and its length on the wire (from the IP header) */
  payload: Buffer
  len: number
  /** the link-layer source address when the link type has one (the firewall that forwarded an echo) */
  mac: string | null
}

const FIN = 0x01
const SYN = 0x02
const RST = 0x04

const LINK_ETHERNET = 1
const LINK_RAW = 101
const LINK_SLL = 113
const LINK_SLL2 = 276

const ipv4 = (b: Buffer, o: number) => `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`

function readPcap(buf: Buffer): { link: number; packets: Packet[]; skipped: number } {
  if (buf.length < 24) throw new Error(`pcap: ${buf.length} bytes, no global header`)
  const m = buf.readUInt32LE(0)
  const le = m === 0xa1b2c3d4 || m === 0xa1b23c4d
  if (!le && m !== 0xd4c3b2a1 && m !== 0x4d3cb2a1) throw new Error(`pcap: bad magic 0x${m.toString(16)} (pcapng is not read here)`)
  const u32 = (o: number) => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o))
  const nano = m === 0xa1b23c4d || m === 0x4d3cb2a1
  const link = u32(20) & 0x0fffffff
  const packets: Packet[] = []
  let skipped = 0
  let o = 24
  while (o + 16 <= buf.length) {
    const sec = u32(o)
    const frac = u32(o + 4)
    const incl = u32(o + 8)
    const start = o + 16
    o = start + incl
    if (o > buf.length) break // a record cut short by the kill: ignore it
    const p = parsePacket(buf.subarray(start, start + incl), link, sec * 1000 + (nano ? frac / 1e6 : frac / 1e3))
    if (p) packets.push(p)
    else skipped++
  }
  return { link, packets, skipped }
}

const macOf = (b: Buffer) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(':')

function parsePacket(f: Buffer, link: number, t: number): Packet | null {
  let ethertype: number
  let o: number
  let mac: string | null = null
  if (link === LINK_ETHERNET) {
    if (f.length < 14) return null
    mac = macOf(f.subarray(6, 12))
    ethertype = f.readUInt16BE(12)
    o = 14
    while ((ethertype === 0x8100 || ethertype === 0x88a8) && f.length >= o + 4) {
      ethertype = f.readUInt16BE(o + 2)
      o += 4
    }
  } else if (link === LINK_SLL) {
    if (f.length < 16) return null
    ethertype = f.readUInt16BE(14)
    mac = macOf(f.subarray(6, 6 + Math.min(8, f.readUInt16BE(4))))
    o = 16
  } else if (link === LINK_SLL2) {
    if (f.length < 20) return null
    ethertype = f.readUInt16BE(0)
    mac = macOf(f.subarray(12, 12 + Math.min(8, f[11]!)))
    o = 20
  } else if (link === LINK_RAW) {
    ethertype = 0x0800
    o = 0
  } else throw new Error(`pcap: link type ${link} is not read here`)
  if (ethertype !== 0x0800 || f.length < o + 20 || f[o]! >> 4 !== 4) return null
  const ihl = (f[o]! & 0x0f) * 4
  const total = f.readUInt16BE(o + 2)
  // non-first fragments carry no transport header
  if ((f.readUInt16BE(o + 6) & 0x1fff) !== 0) return null
  const ipProto = f[o + 9]
  const src = ipv4(f, o + 12)
  const dst = ipv4(f, o + 16)
  const l4 = o + ihl
  // the IP length bounds the payload: Ethernet pads short frames
  const ipEnd = Math.min(o + total, f.length)
  if (ipProto === 6 && f.length >= l4 + 20) {
    const doff = (f[l4 + 12]! >> 4) * 4
    return {
      t, proto: 'tcp', src, dst,
      sport: f.readUInt16BE(l4), dport: f.readUInt16BE(l4 + 2),
      seq: f.readUInt32BE(l4 + 4), flags: f[l4 + 13]!,
      payload: f.subarray(Math.min(l4 + doff, ipEnd), ipEnd), len: Math.max(0, total - ihl - doff), mac,
    }
  }
  if (ipProto === 17 && f.length >= l4 + 8) {
    return {
      t, proto: 'udp', src, dst,
      sport: f.readUInt16BE(l4), dport: f.readUInt16BE(l4 + 2), seq: 0, flags: 0,
      payload: f.subarray(Math.min(l4 + 8, ipEnd), ipEnd), len: Math.max(0, f.readUInt16BE(l4 + 4) - 8), mac,
    }
  }
  return null
}

// ---------------------------------------------------------------------------------------------
// The witness's view, rebuilt from packets.

/** One witness flow as a capture saw it. */
interface CapFlow {
  proto: 'tcp' | 'udp'
  clientPort: number
  /** "host:port" the client sent to */
  target: string
  /** the witness's flow id, from its first message */
  id: number | null
  /** arrival times of the messages the application would have received, in the data direction */
  deliveries: number[]
  /** when new messages left in the other direction (retransmissions excluded): the sender's own pace */
  sends: number[]
  /** UDP: each message's send time and whether it came back (sequence order) */
  udp: { t: number; back: boolean }[]
  /** RST packets of the flow (either direction) and FINs from the far end, with their times */
  rsts: number[]
  fins: number[]
}

const ID_RE = /^(\d+):(\d+)\n/

/** Receiving side of one direction of a flow: what the socket hands the application, and when. */
class Receiver {
  private nxt: number | undefined
  private readonly ooo = new Map<number, Buffer>()
  private readonly seen = new Set<number>()
  constructor(private readonly proto: 'tcp' | 'udp') {}

  /** true when this packet gives the application a new message (a line, or a new UDP seq) */
  take(p: Packet): boolean {
    if (this.proto === 'udp') {
      const m = ID_RE.exec(p.payload.toString('latin1'))
      if (!m) return false
      const seq = Number(m[2])
      if (this.seen.has(seq)) return false
      this.seen.add(seq)
      return true
    }
    if (p.flags & SYN) {
      this.nxt = (p.seq + 1) >>> 0
      return false
    }
    if (!p.len) return false
    let nxt: number = this.nxt ?? p.seq
    const d = (p.seq - nxt) | 0
    if (d > 0) {
      this.nxt = nxt
      this.ooo.set(p.seq, p.payload)
      return false
    }
    if (d + p.len <= 0) return false // a retransmission of bytes already delivered
    let fresh = p.payload.subarray(-d)
    nxt = (nxt + p.len + d) >>> 0
    for (let more = true; more; ) {
      more = false
      for (const [s, b] of this.ooo) {
        const dd: number = (s - nxt) | 0
        if (dd > 0) continue
        this.ooo.delete(s)
        if (dd + b.length > 0) {
          fresh = Buffer.concat([fresh, b.subarray(-dd)])
          nxt = (nxt + b.length + dd) >>> 0
          more = true
        }
      }
    }
    this.nxt = nxt
    return fresh.includes(0x0a)
  }
}

/**
 * Flows of `client` in a capture. `toClient`: the data direction is towards the client (the
 * client's capture: echoes); otherwise towards the far end (the server's capture: requests).
 */
function flowsOf(packets: Packet[], client: string, toClient: boolean): Map<string, CapFlow> {
  const flows = new Map<string, CapFlow>()
  const rx = new Map<string, Receiver>()
  for (const p of packets.sort((a, b) => a.t - b.t)) {
    const out = p.src === client
    if (!out && p.dst !== client) continue
    const clientPort = out ? p.sport : p.dport
    const target = out ? `${p.dst}:${p.dport}` : `${p.src}:${p.sport}`
    const key = `${p.proto} ${clientPort} ${target}`
    let f = flows.get(key)
    if (!f) flows.set(key, (f = { proto: p.proto, clientPort, target, id: null, deliveries: [], sends: [], udp: [], rsts: [], fins: [] }))
    if (f.id === null && out) {
      const m = ID_RE.exec(p.payload.toString('latin1'))
      if (m) f.id = Number(m[1])
    }
    if (p.flags & RST) f.rsts.push(p.t)
    if (p.flags & FIN && !out) f.fins.push(p.t)
    const data = out !== toClient
    const rkey = `${key} ${data ? 'data' : 'send'}`
    let r = rx.get(rkey)
    if (!r) rx.set(rkey, (r = new Receiver(p.proto)))
    if (!r.take(p)) continue
    if (!data) f.sends.push(p.t)
    else f.deliveries.push(p.t)
    if (p.proto === 'udp') {
      const seq = Number(ID_RE.exec(p.payload.toString('latin1'))![2])
      if (!data) f.udp[seq] = { t: p.t, back: false }
      else if (f.udp[seq]) f.udp[seq]!.back = true
    }
  }
  return flows
}

/**
 * A UDP flow's outage as its sender met it, free of the sender's own stalls: the longest span from
 * the send of a message that came back to the send of the next one that came back, across
 * messages that did not. Null without such a loss in the window.
 */
function lossSpan(f: CapFlow, w: Window): number | null {
  let best: number | null = null
  let prev: number | undefined
  let lost = false
  for (const m of f.udp) {
    if (!m) continue
    if (!m.back) {
      lost = true
      continue
    }
    if (lost && prev !== undefined && m.t > w.start && prev < w.end) best = Math.max(best ?? 0, m.t - prev)
    prev = m.t
    lost = false
  }
  return best
}

/** Which firewall (link-layer source) delivered the echoes to the client, as it changed. */
function echoSources(packets: Packet[], client: string): { t: number; mac: string }[] {
  const out: { t: number; mac: string }[] = []
  for (const p of packets) if (p.dst === client && p.len > 0 && p.mac && p.mac !== out.at(-1)?.mac) out.push({ t: p.t, mac: p.mac })
  return out
}

interface Window {
  start: number
  end: number
}

/**
 * The worst time between two deliveries overlapping the window (analyze.ts's rule), and when.
 * `until`: as the witness does for a flow that was not reset, the silence after the last delivery
 * up to its last send counts as a gap too.
 */
function worstGap(deliveries: number[], w: Window, until?: number, stalls: Window[] = []): { ms: number; start: number } | null {
  const ts = until !== undefined && deliveries.length && deliveries.at(-1)! < until ? [...deliveries, until] : deliveries
  let best: { ms: number; start: number } | null = null
  for (let i = 1; i < ts.length; i++) {
    const a = ts[i - 1]!
    const b = ts[i]!
    if (b - a >= GAP_MIN_MS && explainedByWitnessStall({ start: a, end: b }, stalls, DEFAULTS.intervalMs)) continue
    if (b > w.start && a < w.end && (!best || b - a > best.ms)) best = { ms: b - a, start: a }
  }
  return best
}

const inWin = (t: number, w: Window) => t >= w.start && t < w.end

// ---------------------------------------------------------------------------------------------
// tcpdump in a probe's namespace.

const captures: Capture[] = []

class Capture {
  readonly child: ChildProcess
  private err = ''
  private readonly exited: Promise<number | null>
  constructor(readonly probe: LabProbe, readonly path: string, clientIp: string) {
    // -Z root: tcpdump would drop to its own user and lose the right to write in our 0700 dir
    this.child = spawn('ip', ['netns', 'exec', probe.netns, 'tcpdump', '-i', 'any', '-n', '-s', '0', '-U', '-B', '32768', '-Z', 'root', '-w', path, `(tcp or udp) and host ${clientIp}`], { stdio: ['ignore', 'ignore', 'pipe'] })
    this.child.stderr!.on('data', (d: Buffer) => (this.err += d.toString()))
    captures.push(this)
    this.exited = new Promise((res) => {
      this.child.on('exit', (code) => res(code))
      this.child.on('error', () => res(-1))
    })
  }

  async ready(): Promise<void> {
    for (let i = 0; i < 200; i++) {
      if (/listening on/.test(this.err)) return
      if (this.child.exitCode !== null) break
      await sleep(50)
    }
    throw new Error(`tcpdump in ${this.probe.netns} did not start: ${this.err.trim()}`)
  }

  /** SIGTERM by PID (ip netns exec execs tcpdump: the PID is tcpdump's); the kernel's drop count. */
  async stop(): Promise<{ dropped: number; stderr: string }> {
    const pid = this.child.pid
    if (pid !== undefined && this.child.exitCode === null && this.child.signalCode === null) process.kill(pid, 'SIGTERM')
    const t = setTimeout(() => pid !== undefined && this.child.exitCode === null && process.kill(pid, 'SIGKILL'), 5000)
    await this.exited
    clearTimeout(t)
    const dropped = Number(/(\d+) packets? dropped by kernel/.exec(this.err)?.[1] ?? 0)
    return { dropped, stderr: this.err }
  }

  kill(): void {
    const pid = this.child.pid
    if (pid !== undefined && this.child.exitCode === null && this.child.signalCode === null) process.kill(pid, 'SIGKILL')
  }
}

// ---------------------------------------------------------------------------------------------
// Drill vs capture.

let failures = 0
/** the pair's VRRP timing, for the crash sanity check */
const vrrp = { advertInt: 1, priority: {} as Record<string, number> }
let suspects = 0
const verdict = (ok: boolean) => {
  if (!ok) failures++
  return ok ? 'PASS' : 'FAIL'
}
const pad = (s: unknown, n: number) => String(s ?? '-').padStart(n)
const fmt = (x: number | null | undefined) => (x === null || x === undefined ? '-' : String(Math.round(x)))

interface Joined {
  d: FlowSummary
  c: CapFlow | undefined
  s: CapFlow | undefined
  capGap: number | null
  capGapAt: number | null
  srvGap: number | null
  sendGap: number | null
  loss: number | null
  capReset: boolean
  rsts: number
  srvRsts: number
}

function comparePhase(mode: DrillMode, ph: PhaseResult, w: Window, cli: Map<string, CapFlow>, srv: Map<string, CapFlow>, clientIp: string, lastSend: number): void {
  const byId = new Map([...cli.values()].filter((f) => f.id !== null).map((f) => [f.id!, f]))
  const srvByPort = new Map([...srv.values()].map((f) => [`${f.proto}:${f.clientPort}`, f]))
  // The witness process's own stalls, as the wire shows them: no UDP message left the client
  // (any flow) for GAP_MIN_MS or more. The drill discounts the gaps its own stalls explain (its
  // event loop ran late); the same rule on this independent evidence.
  const sends = [...cli.values()].filter((f) => f.proto === 'udp').flatMap((f) => f.sends).sort((a, b) => a - b)
  const stalls: Window[] = []
  // late by GAP_MIN_MS, as the witness's own tick counts it
  for (let i = 1; i < sends.length; i++) if (sends[i]! - sends[i - 1]! >= DEFAULTS.intervalMs + GAP_MIN_MS) stalls.push({ start: sends[i - 1]!, end: sends[i]! })
  const rows: Joined[] = ph.per_flow.map((d) => {
    const c = byId.get(d.id)
    const s = c ? srvByPort.get(`${c.proto}:${c.clientPort}`) : undefined
    const g = c ? worstGap(c.deliveries, w, d.reset ? undefined : lastSend, stalls) : null
    const rst = c ? c.rsts.filter((t) => inWin(t, w)).length : 0
    const fin = c ? c.fins.filter((t) => inWin(t, w)).length : 0
    return {
      d, c, s,
      capGap: g?.ms ?? null,
      capGapAt: g ? g.start - w.start : null,
      srvGap: s ? (worstGap(s.deliveries, w)?.ms ?? null) : null,
      sendGap: c ? (worstGap(c.sends, w)?.ms ?? null) : null,
      loss: c && c.proto === 'udp' ? lossSpan(c, w) : null,
      capReset: rst + fin > 0,
      rsts: rst,
      srvRsts: s ? s.rsts.filter((t) => inWin(t, w)).length : 0,
    }
  })
  console.log(`\n${mode} / ${ph.phase} (${ph.from} -> ${ph.to}), window [trigger, +${Math.round(w.end - w.start)} ms):`)
  console.log(`  ${'flow'.padEnd(4)} ${'class'.padEnd(12)} ${'client port'.padStart(11)}  ${'drill gap'.padStart(9)} ${'@'.padStart(6)}  ${'cap gap'.padStart(8)} ${'@'.padStart(6)}  ${'diff'.padStart(5)} ${''.padEnd(4)}  ${'srv gap'.padStart(7)} ${'send'.padStart(5)} ${'loss'.padStart(5)}  ${'drill reset'.padStart(11)} ${'RST cli'.padStart(7)} ${'RST srv'.padStart(7)} ${''.padEnd(4)}`)
  for (const r of rows) {
    const found = r.c !== undefined && r.c.target === r.d.target && r.c.proto === r.d.proto
    const diff = r.capGap === null ? null : r.capGap - r.d.max_gap_ms
    const gapOk = found && diff !== null && Math.abs(diff) <= TOLERANCE_MS
    const resetOk = found && r.capReset === r.d.reset
    const dAt = r.d.gap_end ? r.d.gap_start - w.start : null
    console.log(
      `  ${pad(`#${r.d.id}`, 4)} ${`${r.d.proto} ${r.d.path}`.padEnd(12)} ${pad(r.c?.clientPort, 11)}  ${pad(r.d.max_gap_ms, 9)} ${pad(fmt(dAt), 6)}  ${pad(fmt(r.capGap), 8)} ${pad(fmt(r.capGapAt), 6)}  ${pad(fmt(diff), 5)} ${verdict(gapOk)}  ${pad(fmt(r.srvGap), 7)} ${pad(fmt(r.sendGap), 5)} ${pad(fmt(r.loss), 5)}  ${pad(r.d.reset ? 'reset' : 'no', 11)} ${pad(r.rsts, 7)} ${pad(r.srvRsts, 7)} ${verdict(resetOk)}` +
        (found ? '' : `  (no flow #${r.d.id} to ${r.d.target} from ${clientIp} in the client capture)`),
    )
  }
  // per class
  const classes = [...new Set(rows.map((r) => `${r.d.proto} ${r.d.path}`))]
  console.log(`  per class: ${'class'.padEnd(12)} ${'drill worst'.padStart(11)} ${'cap worst'.padStart(9)}  ${'drill resets'.padStart(12)} ${'cap flows w/ RST'.padStart(16)}`)
  for (const k of classes) {
    const rs = rows.filter((r) => `${r.d.proto} ${r.d.path}` === k)
    const live = rs.filter((r) => !r.d.reset)
    const dw = live.length ? Math.max(...live.map((r) => r.d.max_gap_ms)) : null
    const cw = live.some((r) => r.capGap !== null) ? Math.max(...live.map((r) => r.capGap ?? 0)) : null
    console.log(`             ${k.padEnd(12)} ${pad(fmt(dw), 11)} ${pad(fmt(cw), 9)}  ${pad(rs.filter((r) => r.d.reset).length, 12)} ${pad(rs.filter((r) => r.capReset).length, 16)}`)
  }
  // the phase's figures as the report has them: gap_ms is the worst UDP witness that was not reset (TCP when no UDP)
  const live = rows.filter((r) => !r.d.reset)
  const udp = live.filter((r) => r.d.proto === 'udp')
  const basis = udp.length ? udp : live.filter((r) => r.d.proto === 'tcp')
  const capPhaseGap = basis.some((r) => r.capGap !== null) ? Math.max(...basis.map((r) => r.capGap ?? 0)) : null
  const gapDiff = ph.gap_ms === null || capPhaseGap === null ? null : capPhaseGap - ph.gap_ms
  const tcpLive = live.filter((r) => r.d.proto === 'tcp')
  const dTcp = tcpLive.length ? Math.max(...tcpLive.map((r) => r.d.max_gap_ms)) : null
  const cTcp = tcpLive.length ? Math.max(...tcpLive.map((r) => r.capGap ?? 0)) : null
  const capResets = rows.filter((r) => r.capReset).length
  const rstFlows = rows.filter((r) => r.rsts > 0).length
  console.log(`  phase: report gap_ms ${fmt(ph.gap_ms)} vs capture worst ${udp.length ? 'UDP' : 'TCP'} gap ${fmt(capPhaseGap)} (diff ${fmt(gapDiff)}) ${verdict(gapDiff !== null && Math.abs(gapDiff) <= TOLERANCE_MS)}; ` +
    `worst TCP stall ${fmt(dTcp)} vs ${fmt(cTcp)} ${verdict(dTcp === null || (cTcp !== null && Math.abs(cTcp - dTcp) <= TOLERANCE_MS))}; ` +
    `flows.reset ${ph.flows.reset}/${ph.flows.total} vs capture ${capResets}/${rows.length} (flows with a RST at the client: ${rstFlows}, RST packets ${rows.reduce((a, r) => a + r.rsts, 0)} client / ${rows.reduce((a, r) => a + r.srvRsts, 0)} server) ${verdict(ph.flows.reset === capResets)}`)
  const worst = (xs: (number | null)[]) => (xs.some((x) => x !== null) ? Math.max(...xs.map((x) => x ?? 0)) : null)
  const mine = stalls.filter((x) => x.end > w.start && x.start < w.end)
  console.log(`  witness stalls: the client sent nothing ${mine.length} time(s) for ${DEFAULTS.intervalMs + GAP_MIN_MS} ms or more (worst ${fmt(worst(mine.map((x) => x.end - x.start)))} ms); gaps inside them are not data-plane gaps, here as in the drill`)
  console.log(`  capture only: worst stall of the client's own UDP sends ${fmt(worst(rows.filter((r) => r.d.proto === 'udp').map((r) => r.sendGap)))} ms; worst UDP loss span (data-plane outage, sender stalls excluded) ${fmt(worst(rows.map((r) => r.loss)))} ms; worst request gap at the server ${fmt(worst(rows.map((r) => r.srvGap)))} ms`)
  const extra = [...cli.values()].filter((f) => f.id !== null && !ph.per_flow.some((d) => d.id === f.id) && f.rsts.some((t) => inWin(t, w)))
  if (extra.length) console.log(`  note: ${extra.length} witness flow(s) the drill did not count in this phase have RSTs in it: ${extra.map((f) => `#${f.id}`).join(', ')}`)
}

/** The pair's interface MACs: "fw1a ens3" by link-layer address. */
async function nodeMacs(): Promise<Map<string, string>> {
  const macs = new Map<string, string>()
  for (const n of NODES) {
    const r = await labExec(SITE, n, ['ip', '-o', 'link'], { timeoutMs: 30_000 })
    for (const m of r.stdout.matchAll(/^\d+: ([^:@]+)[^\n]*link\/ether ([0-9a-f:]{17})/gm)) macs.set(m[2]!, `${n} ${m[1]}`)
  }
  return macs
}

async function drillWithCapture(mode: DrillMode, client: LabProbe, server: LabProbe, round: number, macs: Map<string, string>): Promise<void> {
  const base = join(pcapDir, `${round}-${mode}`)
  const caps = [new Capture(client, `${base}-client.pcap`, client.ip), new Capture(server, `${base}-server.pcap`, client.ip)]
  let r: DrillResult
  let stops: { dropped: number; stderr: string }[]
  try {
    await Promise.all(caps.map((c) => c.ready()))
    const t0 = Date.now()
    r = await runDrillJob({ file, pair: PAIR, mode, failback: FAILBACK, probeFlows: FLOWS, verifyDeadlineS: 20, force: true }, stderrProgress('warn'), AbortSignal.timeout(300_000))
    console.log(`\n=== ${mode} drill${FAILBACK ? ' with failback' : ''} (round ${round}): verdict ${r.verdict}, ${((Date.now() - t0) / 1000).toFixed(0)} s; ${r.failover.flows.total} witness flows`)
    for (const why of r.reasons) console.log(`  ${why.slice(0, 240)}`)
  } finally {
    // the witnesses' last packets must reach the files before tcpdump stops
    await sleep(1500)
    stops = await Promise.all(caps.map((c) => c.stop()))
  }
  const client0 = readPcap(readFileSync(`${base}-client.pcap`))
  const server0 = readPcap(readFileSync(`${base}-server.pcap`))
  console.log(`  capture: client ${client0.packets.length} packets (link type ${client0.link}, ${stops[0]!.dropped} dropped by the kernel), server ${server0.packets.length} packets (${stops[1]!.dropped} dropped)`)
  console.log(`  capture complete (no packets dropped by the kernel) ${verdict(stops.every((s) => s.dropped === 0))}`)
  const cli = flowsOf(client0.packets, client.ip, true)
  const srv = flowsOf(server0.packets, client.ip, false)
  // The witness's last send (its UDP flows send a new datagram every interval up to then; TCP
  // when there is none) and its end, which closes the last phase (analyze.ts: witnesses' endedAt)
  const sends = client0.packets.filter((p) => p.src === client.ip && p.len > 0)
  const basis = sends.some((p) => p.proto === 'udp') ? sends.filter((p) => p.proto === 'udp') : sends
  const lastSend = basis.reduce((a, p) => Math.max(a, p.t), 0)
  const witnessEnd = lastSend + Math.min(500, DEFAULTS.intervalMs * 10)
  const phases = [r.failover, ...(r.failback ? [r.failback] : [])]
  const trig = (p: PhaseResult) => p.timeline.find((e) => e.event === 'trigger')?.t
  phases.forEach((ph, k) => {
    const start = trig(ph)
    if (start === undefined) {
      console.log(`  ${ph.phase}: no trigger in the timeline ${verdict(false)}`)
      return
    }
    const next = phases[k + 1]
    const end = next ? (trig(next) ?? witnessEnd) : witnessEnd
    comparePhase(mode, ph, { start, end }, cli, srv, client.ip, lastSend)
    const rel = (t: number) => `+${Math.round(t - start)}`
    const ev = ph.timeline.filter((e) => e.t >= start && e.t < end && e.event !== 'trigger').map((e) => `${e.event} ${rel(e.t)}`)
    console.log(`  drill timeline (ms after the trigger): ${ev.join(', ')}`)
    const all = echoSources(client0.packets, client.ip)
    const before = all.filter((x) => x.t < start).length
    const src = all.slice(Math.max(0, before - 1)).filter((x) => x.t < end)
    console.log(`  capture: echoes reach the client from ${src.map((x) => `${macs.get(x.mac) ?? x.mac} from ${rel(x.t)}`).join(', then ') || '-'}`)
    // The move itself: the stall of each flow across the first echo through the new master.
    const moved = src.find((x) => x.t >= start && macs.get(x.mac)?.startsWith(`${ph.to} `))
    if (moved) {
      const across = (f: CapFlow) => {
        const i = f.deliveries.findIndex((t) => t >= moved.t)
        return i > 0 ? f.deliveries[i]! - f.deliveries[i - 1]! : null
      }
      const ids = new Set(ph.per_flow.filter((f) => !f.reset).map((f) => f.id))
      const fs = [...cli.values()].filter((f) => f.id !== null && ids.has(f.id))
      const worstOf = (xs: (number | null)[]) => (xs.some((x) => x !== null) ? Math.max(...xs.map((x) => x ?? 0)) : null)
      const u = worstOf(fs.filter((f) => f.proto === 'udp').map(across))
      const t = worstOf(fs.filter((f) => f.proto === 'tcp').map(across))
      const worstAt = ph.per_flow.find((f) => !f.reset && f.max_gap_ms === ph.gap_ms && f.gap_end)
      console.log(`  capture: the stall across the move to ${ph.to} (+${Math.round(moved.t - start)} ms): UDP ${fmt(u)} ms, TCP ${fmt(t)} ms` +
        (worstAt ? `; the drill's gap_ms ${ph.gap_ms} lies at +${Math.round(worstAt.gap_start - start)}..+${Math.round(worstAt.gap_end - start)} ms${worstAt.gap_end < moved.t - 100 || worstAt.gap_start > moved.t + 100 ? ', not at the move' : ''}` : ''))
      // A crash gives the standby no goodbye: it cannot take over before the master-down interval.
      const masterDown = masterDownMs(vrrp.advertInt, vrrp.priority[ph.to] ?? 0)
      if (mode === 'crash' && ph.phase === 'failover' && moved.t - start < masterDown - 1000 * vrrp.advertInt) {
        console.log(`  SUSPECT: a crash, yet ${ph.to} forwarded after ${Math.round(moved.t - start)} ms, under the master-down interval of ${masterDown} ms: ${ph.from}'s keepalived must have sent its priority-0 goodbye (a graceful stop), while the drill judged it as a crash (bound ${ph.bound_ms} ms)`)
        suspects++
      }
    }
  })
}

async function main(): Promise<void> {
  const watchdog = setTimeout(() => {
    console.error(`drill-capture: over ${LIMIT_MS / 1000} s, giving up`)
    process.kill(process.pid, 'SIGTERM')
  }, LIMIT_MS)
  watchdog.unref()
  if (!(await which('tcpdump'))) {
    console.log('installing tcpdump (apt-get install -y tcpdump)')
    await exec('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'tcpdump'], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, timeoutMs: 300_000 })
  }
  mkdirSync(pcapDir)
  const raw = parse(readFileSync('inventory/lab.yaml', 'utf8')) as { site: string; pairs: { name: string }[] }
  raw.site = SITE
  raw.pairs = raw.pairs.filter((p) => p.name === PAIR)
  writeFileSync(file, stringify(raw))
  console.log(`drill-capture bench: ${FLOWS} witness flows every ${DEFAULTS.intervalMs} ms; ${ROUNDS} round(s) of ${MODES.join(' + ')} drills on ${PAIR}${FAILBACK ? ' with failback' : ''}; pcaps in ${pcapDir}`)
  const model = await loadInventory(file)
  const pm = model.pairs.find((p) => p.name === PAIR)!
  vrrp.advertInt = pm.vrrp.advert_int
  for (const n of pm.nodes) vrrp.priority[n.name] = n.priority
  await labUp(model, stderrProgress('warn'), AbortSignal.timeout(540_000))
  const a = await exec(process.execPath, ['packages/cli/bin/run.js', 'apply', file, '--yes'], { allowFail: true, timeoutMs: 300_000 })
  if (a.code !== 0) throw new Error(`hafw apply failed:\n${a.stdout}\n${a.stderr}`)
  const probes = await labProbes(SITE)
  const client = probes.find((p) => p.role === 'client' && p.pair === PAIR)
  const server = probes.find((p) => p.role === 'server' && p.pair === PAIR)
  if (!client || !server) throw new Error(`site ${SITE}: no probe client/server for ${PAIR} (${probes.map((p) => `${p.name} ${p.role}`).join(', ')})`)
  console.log(`probe client ${client.name} ${client.ip} (netns ${client.netns}), probe server ${server.name} ${server.ip} (netns ${server.netns})`)
  const macs = await nodeMacs()
  for (let round = 1; round <= ROUNDS; round++) for (const mode of MODES) await drillWithCapture(mode, client, server, round, macs)
  if (suspects) console.log(`\n${suspects} SUSPECT drill(s): see above (not counted as a mismatch)`)
  console.log(`\n${failures ? `${failures} comparison(s) FAILED` : 'every comparison passed'}; load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`)
  if (failures) process.exitCode = 1
}

async function cleanup(): Promise<void> {
  for (const c of captures) c.kill()
  await labDown(SITE, stderrProgress('warn')).catch((e: Error) => console.error(`lab down: ${e.message}`))
  await stopEmbeddedRedis(join(stateDir, 'redis')).catch(() => undefined)
  rmSync(process.env.KEEP_PCAPS ? stateDir : dir, { recursive: true, force: true })
  if (process.env.KEEP_PCAPS) console.log(`pcaps kept in ${pcapDir}`)
}

runBench(main, cleanup)
