import { HafwError } from '@hafw/core'
import { canonicalIPv6 } from '@hafw/inventory'
import type { Session } from '@hafw/transport'
import { shellQuote as q } from '@hafw/transport'
import { type ConntrackdStats, parseConntrackdStats } from './stats.js'

/*
 * What verify and status read from one node, over the node's one SSH session:
 * - a probe: one short script on one channel (VIPs of both families from `ip -o addr`, the
 *   units, hafw-notify's /run/hafw/state.json, nf_conntrack_count, `conntrackd -s`, `-s link`,
 *   `-s network`);
 * - dumps, each on a channel of its own and streamed into parseFlows as they arrive: the kernel
 *   table (`conntrack -L`, IPv4 then IPv6), the internal cache (`conntrackd -i`), the external
 *   cache (`conntrackd -e`; both caches hold both families). The text forms: a third of the
 *   XML's bytes, and `conntrackd -i/-e` text carries each entry's age ("[active since Ns]"),
 *   which the XML does not.
 */

/** hafw-notify's /run/hafw/state.json (packages/render/README.md). */
export interface NotifyState {
  role: 'primary' | 'backup' | 'fault'
  phase: string
  ok: boolean
  since_ms: number
  updated_ms: number
  steps?: { step: string; exit: number }[]
}

export interface NodeProbe {
  /** controller clock (ms) when the probe's output arrived */
  t: number
  /** the node's clock (ms) when the script ran */
  nodeT?: number
  /** addresses of both families by device (IPv6 in canonical text, link-local ones left out) */
  addrs: { device: string; ip: string }[]
  /** systemctl is-active per unit */
  units: Record<string, string>
  state: NotifyState | null
  /** nf_conntrack_count */
  kernelEntries: number | null
  /** null on a pair without conntrack sync */
  conntrackd: ConntrackdProbe | null
  /** `ip -4 rule show` lines, when asked for (ProbeOptions.rules) */
  rules?: string[]
}

export interface ConntrackdProbe {
  /** answered on its control socket */
  running: boolean
  /** why not, when it did not answer */
  error?: string
  stats?: ConntrackdStats
}

export const UNITS = ['keepalived.service', 'conntrackd.service'] as const

/**
 * Every address of the node, IPv4 and IPv6, one line each (what parseAddrs reads). One command
 * for both families: `ip -o addr show` prints `inet` and `inet6` lines alike.
 */
export const ADDR_COMMAND = 'ip -o addr show'

export interface ProbeOptions {
  /** conntrackd.conf on the node; omit on pairs without conntrack sync */
  conntrackdConf?: string
  /** only `conntrackd -s` (a second sample in the same poll) */
  statsOnly?: boolean
  /** hafw-notify's run folder */
  runDir?: string
  /** units whose state to report (default UNITS) */
  units?: readonly string[]
  /** only `conntrackd -s` (no `-s link`, `-s network`), no kernel entry count, no node clock: for frequent samples */
  brief?: boolean
  /** also the policy routing rules (`ip -4 rule show`) */
  rules?: boolean
}

/** The probe as one shell script; sections start with "@@". */
export function probeScript(o: ProbeOptions): string {
  const units = o.units ?? UNITS
  const lines = ['PATH=/usr/sbin:/usr/bin:/sbin:/bin', ...(o.brief ? [] : [`printf '@@t %s\\n' "$(date +%s%3N)"`])]
  if (o.conntrackdConf) {
    // first: the sample opens the window in which sync traffic must be seen
    // timeout: a conntrackd busy committing must not hang the probe (nor a probe loop: closing
    // the loop's channel would not end a program it waits for)
    // (no $(...) around it, and builtins below where a program would do: each program start counts at a rollout's rate of samples)
    lines.push(
      `s() { printf '@@ct %s\\n' "\${1:-general}"; timeout 5 conntrackd -C ${q(o.conntrackdConf)} -s "$@" 2>&1; printf '\\n@@rc %s\\n' "$?"; }`,
      's',
      ...(o.brief ? [] : ['s link', 's network']),
    )
  }
  if (!o.statsOnly) {
    lines.push(
      'echo @@addr',
      ADDR_COMMAND,
      'echo @@units',
      // one systemctl for all units: one state per line, in the order asked (unknown: inactive)
      `systemctl is-active ${units.map(q).join(' ')} 2>/dev/null`,
      'echo @@state',
      `{ while IFS= read -r l || [ -n "$l" ]; do printf '%s\\n' "$l"; done < ${q(`${o.runDir ?? '/run/hafw'}/state.json`)}; } 2>/dev/null`,
      'echo',
      ...(o.brief ? [] : [`c=; read -r c 2>/dev/null < /proc/sys/net/netfilter/nf_conntrack_count; printf '@@count %s\\n' "$c"`]),
    )
  }
  if (o.rules) lines.push('echo @@rules', 'ip -4 rule show')
  lines.push('echo @@end')
  return lines.join('\n') + '\n'
}

/** Parse what probeScript printed. Pure. */
export function parseProbe(out: string, t = Date.now(), o: ProbeOptions = {}): NodeProbe {
  if (!/^@@end$/m.test(out)) throw new HafwError(`probe output is cut short: ${JSON.stringify(out.slice(-200))}`)
  const section = (name: string): string | undefined => {
    const m = new RegExp(`^@@${name}\\n([\\s\\S]*?)(?=^@@)`, 'm').exec(out)
    return m?.[1]
  }
  const nodeT = /^@@t (\d+)$/m.exec(out)?.[1]
  const count = /^@@count (\d+)$/m.exec(out)?.[1]
  // systemctl is-active: one state per unit asked, in order
  const states = (section('units') ?? '').split('\n')
  const units: Record<string, string> = Object.fromEntries((o.units ?? UNITS).map((u, i) => [u, states[i]?.trim() || 'unknown']))
  const probe: NodeProbe = {
    t,
    addrs: parseAddrs(section('addr') ?? ''),
    units,
    state: parseState(section('state') ?? ''),
    kernelEntries: count === undefined ? null : Number(count),
    conntrackd: null,
  }
  if (nodeT) probe.nodeT = Number(nodeT)
  if (o.rules) probe.rules = (section('rules') ?? '').split('\n').filter((l) => l.trim())
  if (o.conntrackdConf) {
    const parts: { which: string; rc: number; text: string }[] = []
    for (const m of out.matchAll(/^@@ct (\S+)\n([\s\S]*?)^@@rc (\d+)$/gm)) parts.push({ which: m[1]!, rc: Number(m[3]), text: m[2]! })
    const general = parts.find((p) => p.which === 'general')
    if (!general || general.rc !== 0) {
      const why = general?.text.trim().split('\n').pop()?.replace(/^\[[^\]]*\] \(pid=\w+\) /, '') ?? 'no answer'
      probe.conntrackd = { running: false, error: general?.rc === 124 ? 'conntrackd -s timed out after 5 s' : why }
    } else {
      // One stats object from the three outputs: -s link adds each link's status (RUNNING/DOWN).
      const stats = parseConntrackdStats(parts.filter((p) => p.rc === 0).map((p) => p.text).join('\n'))
      probe.conntrackd = { running: true, stats }
    }
  }
  return probe
}

/** One address of `ip -o addr show` or of an `ip -o monitor address` event. */
export interface AddrLine {
  device: string
  /** IPv6 in canonical text, as the model holds VIPs */
  ip: string
  /** an IPv6 address still in duplicate address detection, or failed it: it carries no traffic yet */
  tentative?: true
}

/**
 * One `ip -o addr show` line ("2: in0    inet6 fd00:10::1/64 scope global nodad \ ..."), without
 * the monitor's timestamp and "Deleted" prefix; null for a line without an address or with a
 * link-local IPv6 one (fe80::/10, one per interface, never a VIP). A point-to-point address
 * ("inet 10.0.0.1 peer 10.0.0.2/32") is the local one.
 */
export function parseAddrLine(line: string): AddrLine | null {
  const m = /^\d+:\s+(\S+)\s+inet(6?)\s+([0-9A-Fa-f.:]+)[/\s](.*)$/.exec(line)
  if (!m) return null
  const device = m[1]!.replace(/@.*$/, '')
  if (!m[2]) return { device, ip: m[3]! }
  if (/^fe[89ab]/i.test(m[3]!)) return null
  // flags come before the "\" that starts the lifetimes
  const tentative = /\s(tentative|dadfailed)\b/.test(m[4]!.split('\\')[0]!)
  return { device, ip: canonicalIPv6(m[3]!), ...(tentative ? { tentative: true as const } : {}) }
}

/**
 * `ip -o addr show` output (`ip -o -4 addr show` too) to device + address, as parseAddrLine
 * reads each line. Tentative and dadfailed addresses count as held here: the node added them,
 * which is what VIP ownership (split brain) is about.
 */
export function parseAddrs(text: string): { device: string; ip: string }[] {
  const out: { device: string; ip: string }[] = []
  for (const line of text.split('\n')) {
    const a = parseAddrLine(line)
    if (a) out.push({ device: a.device, ip: a.ip })
  }
  return out
}

function parseState(text: string): NotifyState | null {
  const t = text.trim()
  if (!t) return null
  try {
    const j = JSON.parse(t) as NotifyState
    return j && typeof j.role === 'string' ? j : null
  } catch {
    return null // being replaced: the script renames atomically, so this is a stale partial read only in theory
  }
}

/** A node's probe as a loop on a channel of its own (Session.openLoop), for the health gate's frequent samples. */
export interface ProbeLoop {
  probe(signal?: AbortSignal): Promise<NodeProbe>
  /** only `conntrackd -s` (ProbeOptions.statsOnly): a sync counter's baseline, one program on the node */
  stats(signal?: AbortSignal): Promise<NodeProbe>
  /** run one of the loop's extra commands (probeLoopScript), e.g. a resync request */
  run(name: string, signal?: AbortSignal): Promise<void>
  close(): void
  readonly dead: Error | null
}

/**
 * probeScript as a loop: the request "p" takes a sample, "s" (with conntrackd) only its
 * counters; each `extra` name runs its shell line (output discarded); anything else, or EOF,
 * ends the loop.
 */
export function probeLoopScript(o: ProbeOptions, extra: Record<string, string> = {}): string {
  // the requests answered with a probe: a shell function each, probe_<request> (probeScript defines s() itself)
  const probes: Record<string, string> = { p: probeScript(o), ...(o.conntrackdConf ? { s: probeScript({ ...o, statsOnly: true }) } : {}) }
  for (const k of Object.keys(extra)) if (!/^[a-z][a-z0-9-]*$/.test(k) || k === 'p' || k === 's') throw new HafwError(`probe loop: bad command name ${JSON.stringify(k)}`)
  const cases = Object.entries(extra).map(([k, line]) => `  ${k}) { ${line}; } >/dev/null 2>&1; echo @@end ;;`)
  return [
    ...Object.entries(probes).flatMap(([k, script]) => [`probe_${k}() {`, script.trimEnd(), '}']),
    'while IFS= read -r req; do',
    '  case $req in',
    ...Object.keys(probes).map((k) => `  ${k}) probe_${k} ;;`),
    ...cases,
    '  *) exit 2 ;;',
    '  esac',
    'done',
    '',
  ].join('\n')
}

/** How long a probe (a loop's request too) may take on the node before it counts as failed. */
const PROBE_TIMEOUT_MS = 20_000

export async function openProbeLoop(s: Session, o: ProbeOptions, extra: Record<string, string> = {}): Promise<ProbeLoop> {
  const loop = await s.openLoop(probeLoopScript(o, extra))
  return {
    probe: async (signal) => parseProbe(await loop.ask('p', { timeoutMs: PROBE_TIMEOUT_MS, ...(signal ? { signal } : {}) }), Date.now(), o),
    stats: async (signal) => {
      if (!o.conntrackdConf) throw new HafwError('probe loop: no conntrackd to ask for its counters')
      return parseProbe(await loop.ask('s', { timeoutMs: PROBE_TIMEOUT_MS, ...(signal ? { signal } : {}) }), Date.now(), { ...o, statsOnly: true })
    },
    run: async (name, signal) => void (await loop.ask(name, { timeoutMs: PROBE_TIMEOUT_MS, ...(signal ? { signal } : {}) })),
    close: () => loop.close(),
    get dead() {
      return loop.dead
    },
  }
}

/** Run the probe over the node's session. */
export async function probeNode(s: Session, o: ProbeOptions, signal?: AbortSignal): Promise<NodeProbe> {
  const r = await s.exec('sh -s', { input: probeScript(o), timeoutMs: PROBE_TIMEOUT_MS, ...(signal ? { signal } : {}) })
  return parseProbe(r.stdout, Date.now(), o)
}

export type DumpKind = 'kernel' | 'internal' | 'external'

/**
 * `conntrack -L` of the kernel table, both families, in one shell command: one family per
 * listing, IPv4 then IPv6. What a bare -L lists depends on the version (1.4.7 asks the kernel for
 * every family, AF_UNSPEC; older releases, and the man page, default to IPv4), while -f asks for
 * exactly one, so no entry is missed or listed twice. `options`: e.g. "-p tcp", "-o ktimestamp".
 */
export function conntrackListCommand(options = ''): string {
  const o = options ? ` ${options}` : ''
  return `conntrack -L -f ipv4${o} && conntrack -L -f ipv6${o}`
}

/** The command that dumps each table in its text form. */
export function dumpCommand(kind: DumpKind, conntrackdConf: string): string {
  // -o ktimestamp adds delta-time= (the entry's age) when nf_conntrack_timestamp=1; the same
  // output otherwise. conntrackd's caches hold both families in one dump.
  if (kind === 'kernel') return conntrackListCommand('-o ktimestamp')
  return `conntrackd -C ${q(conntrackdConf)} ${kind === 'internal' ? '-i' : '-e'}`
}

export interface DumpStats {
  node: string
  kind: DumpKind
  command: string
  bytes: number
  /** from opening the channel to the end of its output */
  ms: number
}

export interface Dump {
  /** the command's output as it arrives, e.g. for parseFlows(chunks, { format: 'text' }) */
  chunks: AsyncIterable<Buffer>
  /** resolves once the command exited 0 and its output was read; rejects otherwise */
  done: Promise<DumpStats>
  cancel(reason?: Error): void
}

/**
 * Start a dump on the node; its output streams with back-pressure (nothing is buffered beyond
 * what the reader holds). Read `chunks` to the end, then await `done`.
 */
export async function openDump(s: Session, node: string, kind: DumpKind, conntrackdConf: string, signal?: AbortSignal): Promise<Dump> {
  const command = dumpCommand(kind, conntrackdConf)
  const t0 = performance.now()
  const stream = await s.openStream(command, { timeoutMs: 120_000, ...(signal ? { signal } : {}) })
  let bytes = 0
  let endMs = 0
  async function* chunks(): AsyncGenerator<Buffer> {
    for await (const c of stream.stdout) {
      bytes += (c as Buffer).length
      yield c as Buffer
    }
    endMs = performance.now()
  }
  const done = (async (): Promise<DumpStats> => {
    const r = await stream.done
    if (r.code !== 0) throw new HafwError(`${node}: ${command}: exit ${r.code}${r.stderr.trim() ? `: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}` : ''}`)
    return { node, kind, command, bytes, ms: Math.round((endMs || performance.now()) - t0) }
  })()
  done.catch(() => {})
  return { chunks: chunks(), done, cancel: (e) => stream.cancel(e) }
}
