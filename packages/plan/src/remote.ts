import { HafwError } from '@hafw/core'
import { shellQuote, type Session } from '@hafw/transport'

/*
 * What hafw reads from a node, in ONE command: every managed file (content, mode, owner), the
 * generation hafw last applied and the live state it recorded then, the live ruleset, routes
 * and policy rules now, the units' enabled/active state and the node's IPv4 addresses (who
 * holds the VIPs). Sections are framed by "@@hafw KIND ARG" lines, bodies base64, so any byte
 * survives.
 */

/** Where hafw keeps its own state on a node. */
export const NODE_DIR = '/var/lib/hafw'
export const GENERATIONS = `${NODE_DIR}/generations`
export type Backend = 'iptables' | 'nftables'
export const LIVE_KINDS = ['ruleset', 'routes', 'rules'] as const
export type LiveKind = (typeof LIVE_KINDS)[number]
export type LiveState = Record<LiveKind, string>

/**
 * Shell functions printing the live state in a normalised form (no counters, no comments, no
 * kernel-made or local-table routes: those follow the VIPs and the links, not the config).
 * Apply records their output at confirm time; plan compares it with what they print now.
 */
export function liveFunctions(backend: Backend): string {
  return [
    backend === 'iptables'
      ? `live_ruleset() { iptables-save 2>/dev/null | sed -e '/^#/d' -e 's/ \\[[0-9]*:[0-9]*\\]$//'; }`
      : `live_ruleset() { nft -s list ruleset 2>/dev/null; }`,
    `live_routes() { ip -4 route show table all 2>/dev/null | grep -v -e ' table local' -e 'proto kernel' | sort; }`,
    `live_rules() { ip -4 rule show 2>/dev/null; }`,
  ].join('\n')
}

export interface RemoteFile {
  path: string
  exists: boolean
  content?: string
  /** "644" as stat prints it */
  mode?: string
  owner?: string
}

export interface UnitState {
  enabled: string
  active: string
}

export interface NodeState {
  files: Record<string, RemoteFile>
  /** the generation hafw last applied (confirmed), null on a node hafw never touched */
  generation: number | null
  /** generations kept on the node */
  generations: number[]
  /** those that were confirmed and not undone (what a rollback may go back to) */
  confirmed: number[]
  /** live state recorded by the last apply, null when none was */
  recorded: LiveState | null
  live: LiveState
  units: Record<string, UnitState>
  /** `ip -o -4 addr show` */
  addr: string
}

const sec = (kind: string, arg: string) => `printf '\\n@@hafw %s %s\\n' ${shellQuote(kind)} ${shellQuote(arg)}`

/** The read script for these paths and units (exported for tests and for apply's re-read). */
export function readScript(paths: readonly string[], units: readonly string[], backend: Backend): string {
  const lines = ['set -u', 'PATH=/usr/sbin:/usr/bin:/sbin:/bin', liveFunctions(backend), `G=${GENERATIONS}`]
  for (const p of paths) {
    const q = shellQuote(p)
    lines.push(`if [ -f ${q} ]; then ${sec('file', p)}; stat -c '%a %U:%G' -- ${q}; base64 -w0 -- ${q}; else ${sec('absent', p)}; fi`)
  }
  lines.push(
    `cur=$(cat ${NODE_DIR}/current 2>/dev/null || true)`,
    `${sec('gen', '-')}; printf '%s' "$cur"`,
    `${sec('gens', '-')}; for g in $(ls "$G" 2>/dev/null | grep -E '^[0-9]+$'); do s=pending; [ -e "$G/$g/confirmed" ] && s=confirmed; [ -e "$G/$g/rolled-back" ] && s=rolled-back; printf '%s:%s ' "$g" "$s"; done`,
    ...LIVE_KINDS.map((k) => `if [ -n "$cur" ] && [ -f "$G/$cur/live/${k}" ]; then ${sec('recorded', k)}; base64 -w0 "$G/$cur/live/${k}"; fi`),
    ...LIVE_KINDS.map((k) => `${sec('live', k)}; live_${k} | base64 -w0`),
    ...units.map((u) => `${sec('unit', u)}; printf '%s %s' "$(systemctl is-enabled ${shellQuote(u)} 2>/dev/null || true)" "$(systemctl is-active ${shellQuote(u)} 2>/dev/null || true)"`),
    `${sec('addr', '-')}; ip -o -4 addr show | base64 -w0`,
    `${sec('end', '-')}`,
  )
  return lines.join('\n') + '\n'
}

const b64 = (s: string) => Buffer.from(s.trim(), 'base64').toString('utf8')

/** Parse what readScript printed. Pure. */
export function parseRead(out: string, label = 'node'): NodeState {
  const st: NodeState = { files: {}, generation: null, generations: [], confirmed: [], recorded: null, live: { ruleset: '', routes: '', rules: '' }, units: {}, addr: '' }
  const parts = out.split('\n@@hafw ')
  if (!parts.some((p) => p.startsWith('end '))) throw new HafwError(`${label}: reading the node's state was cut short`)
  const recorded: Partial<LiveState> = {}
  for (const part of parts.slice(1)) {
    const nl = part.indexOf('\n')
    const head = nl < 0 ? part : part.slice(0, nl)
    const body = nl < 0 ? '' : part.slice(nl + 1)
    const sp = head.indexOf(' ')
    const kind = head.slice(0, sp)
    const arg = head.slice(sp + 1)
    switch (kind) {
      case 'file': {
        const [meta = '', data = ''] = body.split('\n')
        const [mode, owner] = meta.split(' ')
        st.files[arg] = { path: arg, exists: true, content: b64(data), mode: mode!, owner: owner! }
        break
      }
      case 'absent':
        st.files[arg] = { path: arg, exists: false }
        break
      case 'gen':
        st.generation = /^\d+$/.test(body.trim()) ? Number(body.trim()) : null
        break
      case 'gens': {
        const all = body.trim().split(/\s+/).map((g) => /^(\d+):(\S+)$/.exec(g)).filter((m): m is RegExpExecArray => m !== null)
        st.generations = all.map((m) => Number(m[1])).sort((a, b) => a - b)
        st.confirmed = all.filter((m) => m[2] === 'confirmed').map((m) => Number(m[1])).sort((a, b) => a - b)
        break
      }
      case 'recorded':
        recorded[arg as LiveKind] = b64(body)
        break
      case 'live':
        st.live[arg as LiveKind] = b64(body)
        break
      case 'unit': {
        const [enabled = '', active = ''] = body.trim().split(' ')
        st.units[arg] = { enabled, active }
        break
      }
      case 'addr':
        st.addr = b64(body)
        break
    }
  }
  if (LIVE_KINDS.every((k) => recorded[k] !== undefined)) st.recorded = recorded as LiveState
  return st
}

/** Read a node's state over an open session: one round trip. */
export async function readNodeState(s: Session, paths: readonly string[], units: readonly string[], backend: Backend, signal?: AbortSignal): Promise<NodeState> {
  const r = await s.exec('sh -s', { input: readScript(paths, units, backend), timeoutMs: 60_000, ...(signal ? { signal } : {}) })
  if (r.code !== 0) throw new HafwError(`${s.label}: reading the node's state failed (exit ${r.code}): ${r.stderr.trim().split('\n').slice(-3).join(' ')}`)
  return parseRead(r.stdout, s.label)
}

/** The addresses each interface holds, from `ip -o -4 addr show`. */
export function parseAddrs(addr: string): { device: string; ip: string }[] {
  const out: { device: string; ip: string }[] = []
  for (const m of addr.matchAll(/^\d+:\s+(\S+)\s+inet\s+(\d+\.\d+\.\d+\.\d+)\//gm)) out.push({ device: m[1]!.replace(/@.*$/, ''), ip: m[2]! })
  return out
}
