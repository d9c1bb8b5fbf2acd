/**
 * Witness traffic for drills: long-lived TCP flows and UDP streams that exchange sequenced
 * messages with an echo responder at a fixed rate, measuring per flow the worst stall, resets
 * and lost messages. Runs as its own process inside a probe host's network namespace
 * (`ip netns exec <ns> node witness.js '<json spec>'`) and prints one JSON result on stdout
 * when the duration ends or on SIGTERM. No dependencies: only node:net and node:dgram.
 *
 * For drills with more than one phase (failover, then failback) every stall longer than
 * `gapMinMs` is kept with its start and end, so each phase can be judged on its own window;
 * a reset carries its time, a lost UDP message the time it was sent. Once every flow has had its
 * first echo, one line `ready <json>` goes to stderr with each flow's local port (the caller
 * looks the flows up in conntrack tables); on SIGUSR1 one line `status <json>` (WitnessStatus).
 *
 * Both families: a target whose host is an IPv6 address (canonical text, no brackets) is reached
 * over IPv6, and every flow's result says its family, so IPv4 and IPv6 flows are judged apart.
 */
import { createConnection, type Socket } from 'node:net'
import { createSocket } from 'node:dgram'

export interface WitnessTarget {
  proto: 'tcp' | 'udp'
  /** an IPv4 or IPv6 address: the flow's family follows it */
  host: string
  port: number
  flows: number
  /** label for the report, e.g. "dnat" or "forward" */
  path?: string
}

export interface WitnessSpec {
  targets: WitnessTarget[]
  intervalMs: number
  durationMs: number
  /** local source address to bind for IPv4 flows (the probe host's) */
  bind?: string
  /** local source address to bind for IPv6 flows */
  bind6?: string
  /** stalls at least this long are listed in `gaps` (default 1.5 x intervalMs) */
  gapMinMs?: number
}

export interface Gap {
  start: number
  end: number
}

export interface FlowResult {
  id: number
  proto: 'tcp' | 'udp'
  /** the IP family of the flow (its target's); absent in records from before IPv6 witnesses */
  family?: 4 | 6
  path: string
  /** "192.168.10.60:25", "[fd00:10::60]:25" */
  target: string
  sent: number
  received: number
  lost: number
  /** worst time between two consecutive echoes, ms */
  maxGapMs: number
  /** when the worst gap began and ended (epoch ms, this host's clock) */
  gapStart: number
  gapEnd: number
  reset: boolean
  error?: string
  connected: boolean
  /** the flow's local port (its conntrack entry's sport) */
  localPort?: number
  /** every stall of at least gapMinMs, in time order (a flow still silent at the end: up to the last send) */
  gaps?: Gap[]
  /** when the reset (or the peer's close) arrived */
  resetAt?: number
  /** send times of the messages that never came back */
  lostAt?: number[]
}

export interface WitnessResult {
  startedAt: number
  endedAt: number
  /** when sending stopped: a flow still silent then has its last gap closed exactly here */
  sendEndedAt?: number
  /**
   * The witness's own stalls: its event loop ran late by at least gapMinMs (CPU starvation on
   * the probe host). It neither sent nor read then, so every flow shows an echo gap of about
   * that length whatever the network did.
   */
  stalls?: Gap[]
  intervalMs: number
  flows: FlowResult[]
}

/** Stalls kept per flow: a broken path at a fast rate must not grow the result without bound. */
const MAX_GAPS = 2000
const MAX_LOST_TIMES = 20_000

/** The family of a target host: IPv6 text has a ":". */
export function familyOfHost(host: string): 4 | 6 {
  return host.includes(':') ? 6 : 4
}

/** "192.168.10.60:25", "[fd00:10::60]:25". */
export function hostPort(host: string, port: number): string {
  return familyOfHost(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`
}

class Flow {
  sent = 0
  received = 0
  lastEcho = 0
  maxGap = 0
  gapStart = 0
  gapEnd = 0
  reset = false
  resetAt = 0
  connected = false
  localPort: number | undefined
  error: string | undefined
  readonly gaps: Gap[] = []
  /** seq -> send time of messages not echoed yet */
  readonly pending = new Map<number, number>()
  readonly family: 4 | 6
  constructor(readonly id: number, readonly t: WitnessTarget, readonly gapMin: number) {
    this.family = familyOfHost(t.host)
  }

  private gap(start: number, end: number): void {
    if (end - start > this.maxGap) {
      this.maxGap = end - start
      this.gapStart = start
      this.gapEnd = end
    }
    if (end - start >= this.gapMin && this.gaps.length < MAX_GAPS) this.gaps.push({ start, end })
  }

  send(): string {
    const seq = ++this.sent
    this.pending.set(seq, Date.now())
    return `${this.id}:${seq}\n`
  }

  echo(seq: number, now: number): void {
    // UDP may deliver a datagram twice; only the first echo of a message counts.
    if (!this.pending.delete(seq) && this.t.proto === 'udp') return
    this.received++
    if (this.lastEcho) this.gap(this.lastEcho, now)
    this.lastEcho = now
  }

  closed(now: number): void {
    if (this.reset) return
    this.reset = true
    this.resetAt = now
  }

  result(end: number): FlowResult {
    // A flow that went silent and never came back has a gap until the end of the run.
    if (this.lastEcho && end > this.lastEcho && !this.reset) this.gap(this.lastEcho, end)
    const r: FlowResult = {
      id: this.id,
      proto: this.t.proto,
      family: this.family,
      path: this.t.path ?? '',
      target: hostPort(this.t.host, this.t.port),
      sent: this.sent,
      received: this.received,
      lost: Math.max(0, this.sent - this.received),
      maxGapMs: this.maxGap,
      gapStart: this.gapStart,
      gapEnd: this.gapEnd,
      reset: this.reset,
      connected: this.connected,
      gaps: this.gaps,
      lostAt: [...this.pending.values()].filter((t) => t <= end).slice(0, MAX_LOST_TIMES),
    }
    if (this.localPort !== undefined) r.localPort = this.localPort
    if (this.resetAt) r.resetAt = this.resetAt
    if (this.error) r.error = this.error
    return r
  }
}

const seqOf = (line: string) => Number(line.split(':')[1])

/** Where every flow is now: when each last had an echo, and which were reset (controller-side waits). */
export interface WitnessStatus {
  now: number
  lastEcho: number[]
  reset: boolean[]
}

export interface WitnessHooks {
  /** every flow had its first echo: their local ports */
  ready?: (flows: { id: number; localPort?: number }[]) => void
  /** receives a function that reports the flows' status at any time */
  status?: (get: () => WitnessStatus) => void
}

export async function runWitness(spec: WitnessSpec, signal?: AbortSignal, hooks: WitnessHooks = {}): Promise<WitnessResult> {
  const onReady = hooks.ready
  const startedAt = Date.now()
  const flows: Flow[] = []
  const closers: (() => void)[] = []
  const timers: NodeJS.Timeout[] = []
  const gapMin = spec.gapMinMs ?? Math.round(spec.intervalMs * 1.5)
  let stopping = false
  let id = 0
  for (const t of spec.targets) for (let i = 0; i < t.flows; i++) flows.push(new Flow(id++, t, gapMin))
  hooks.status?.(() => ({ now: Date.now(), lastEcho: flows.map((f) => f.lastEcho), reset: flows.map((f) => f.reset) }))
  let ready = false
  const checkReady = () => {
    if (ready || !flows.every((f) => f.received > 0)) return
    ready = true
    onReady?.(flows.map((f) => ({ id: f.id, ...(f.localPort !== undefined ? { localPort: f.localPort } : {}) })))
  }

  for (const f of flows) {
    const bind = f.family === 6 ? spec.bind6 : spec.bind
    if (f.t.proto === 'tcp') {
      const sock: Socket = createConnection({ host: f.t.host, port: f.t.port, ...(f.family === 6 ? { family: 6 } : {}), ...(bind ? { localAddress: bind } : {}) })
      sock.setNoDelay(true)
      let buf = ''
      let timer: NodeJS.Timeout | undefined
      sock.on('connect', () => {
        f.connected = true
        f.localPort = sock.localPort
        f.lastEcho = Date.now()
        timer = setInterval(() => {
          if (sock.writable && !stopping) sock.write(f.send())
        }, spec.intervalMs)
        timers.push(timer)
      })
      sock.on('data', (d) => {
        buf += d.toString('latin1')
        let nl: number
        while ((nl = buf.indexOf('\n')) >= 0) {
          f.echo(seqOf(buf.slice(0, nl)), Date.now())
          buf = buf.slice(nl + 1)
        }
        checkReady()
      })
      sock.on('error', (e: NodeJS.ErrnoException) => {
        if (e.code === 'ECONNRESET' || e.code === 'EPIPE') f.closed(Date.now())
        f.error = e.code ?? e.message
      })
      // A peer that closes mid-run is as bad as a reset for the witness.
      sock.on('close', () => {
        clearInterval(timer)
        if (!stopping && f.connected) f.closed(Date.now())
      })
      closers.push(() => {
        clearInterval(timer)
        sock.destroy()
      })
    } else {
      const sock = createSocket(f.family === 6 ? 'udp6' : 'udp4')
      sock.on('message', (m) => {
        f.echo(seqOf(m.toString('latin1')), Date.now())
        checkReady()
      })
      sock.on('error', (e) => (f.error = e.message))
      // Bound and connected before the first send: the local port is known from the start, and
      // the kernel drops datagrams from any other address (a reply NATed wrongly is no echo).
      sock.bind({ port: 0, ...(bind ? { address: bind } : {}) }, () => {
        sock.connect(f.t.port, f.t.host, () => {
          f.localPort = sock.address().port
          f.connected = true
          f.lastEcho = Date.now()
          const timer = setInterval(() => {
            if (!stopping) sock.send(f.send())
          }, spec.intervalMs)
          timers.push(timer)
        })
      })
      closers.push(() => sock.close())
    }
  }

  // The event loop's own lateness: a tick every interval, a stall when one comes gapMin late.
  const stalls: Gap[] = []
  let tick = Date.now()
  timers.push(setInterval(() => {
    const now = Date.now()
    if (now - tick - spec.intervalMs >= gapMin && stalls.length < MAX_GAPS) stalls.push({ start: tick, end: now })
    tick = now
  }, spec.intervalMs))

  await new Promise<void>((resolve) => {
    const done = () => resolve()
    const t = setTimeout(done, spec.durationMs)
    signal?.addEventListener('abort', () => {
      clearTimeout(t)
      done()
    }, { once: true })
  })
  stopping = true
  const lastSend = Date.now()
  for (const t of timers) clearInterval(t)
  // Let the last echoes arrive before judging losses.
  await new Promise((r) => setTimeout(r, Math.min(500, spec.intervalMs * 10)))
  const endedAt = Date.now()
  const results = flows.map((f) => f.result(lastSend))
  for (const c of closers) c()
  return { startedAt, endedAt, sendEndedAt: lastSend, stalls, intervalMs: spec.intervalMs, flows: results }
}

// Run as a program: node witness.js '<spec json>'
if (import.meta.url === `file://${process.argv[1]}`) {
  const spec = JSON.parse(process.argv[2] ?? '{}') as WitnessSpec
  const ac = new AbortController()
  process.on('SIGTERM', () => ac.abort())
  process.on('SIGINT', () => ac.abort())
  // SIGUSR1: one `status <json>` line on stderr (the drill waits for stalled flows with it)
  let status: (() => WitnessStatus) | undefined
  process.on('SIGUSR1', () => status && process.stderr.write(`status ${JSON.stringify(status())}\n`))
  runWitness(spec, ac.signal, { ready: (flows) => process.stderr.write(`ready ${JSON.stringify(flows)}\n`), status: (get) => (status = get) }).then(
    (r) => {
      process.stdout.write(JSON.stringify(r) + '\n', () => process.exit(0))
    },
    (e) => {
      process.stderr.write(String(e) + '\n')
      process.exit(1)
    },
  )
}
