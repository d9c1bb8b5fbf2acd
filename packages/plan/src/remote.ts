import { HafwError } from '@hafw/core'
import { shellQuote, type Session } from '@hafw/transport'

/*
 * What hafw reads from a node, in ONE command: every managed file (content, mode, owner), the
 * generation hafw last applied and the live state it recorded then, the live ruleset, routes
 * and policy rules now, the units' enabled/active state and the node's addresses of both families (who
 * holds the VIPs). Sections are framed by "@@hafw KIND ARG" lines, bodies base64, so any byte
 * survives.
 */

/** Where hafw keeps its own state on a node. */
export const NODE_DIR = '/var/lib/hafw'
export const GENERATIONS = `${NODE_DIR}/generations`
/** Serialises what changes a node (fd 9 under flock). */
export const NODE_LOCK = `${NODE_DIR}/lock`
/** The highest fencing token a job has changed the node with. */
export const FENCE = `${NODE_DIR}/fence`
/** Exit code of a node script that the fence refused. */
export const FENCED_EXIT = 75

/**
 * Under the node lock: refuse a fencing token lower than the node's, else record it. A job
 * whose pair lock expired while it stalled still believes it holds the pair; once a newer job
 * has written to the node with a larger token, the node refuses the stale one ("@@fenced N").
 * `token` is a number or a shell word holding one; none (a run outside the queue): no check.
 */
export function fenceLines(token: number | string | undefined): string[] {
  if (token === undefined) return []
  if (typeof token === 'number' && !(Number.isSafeInteger(token) && token > 0)) throw new HafwError(`fencing token must be a positive integer, found ${token}`)
  return [
    `t=${token}; case $t in '' | *[!0-9]*) echo "@@fenced bad token"; exit ${FENCED_EXIT} ;; esac`,
    `f=; { read -r f < ${FENCE}; } 2>/dev/null; case $f in '' | *[!0-9]*) f=0 ;; esac`,
    `if [ "$f" -gt "$t" ]; then echo "@@fenced $f"; exit ${FENCED_EXIT}; fi`,
    `[ "$f" = "$t" ] || { echo "$t" > ${FENCE}.tmp && mv -f ${FENCE}.tmp ${FENCE}; }`,
  ]
}

/** Shell: run `body` for each generation directory of the node, with $d the directory and $g its number (builtins only). */
export const forEachGeneration = (body: string) => `for d in "$G"/*; do g=\${d##*/}; case $g in ''|*[!0-9]*) continue ;; esac; ${body}; done`

/** The first lines of a script that changes a node: take the node lock, pass the fence. */
export function lockedLines(fence: number | undefined): string[] {
  return [`[ -d ${NODE_DIR} ] || mkdir -p ${NODE_DIR}`, `exec 9>${NODE_LOCK}`, 'flock 9', ...fenceLines(fence)]
}

/** A script's result, as an error when the node's fence refused it (exit FENCED_EXIT). */
export function fenceRefusal(node: string, what: string, r: { code: number; stdout: string }, fence: number | undefined): HafwError | null {
  if (r.code !== FENCED_EXIT) return null
  const seen = /^@@fenced (.*)$/m.exec(r.stdout)?.[1] ?? '?'
  return new HafwError(`${node}: ${what} refused by the node's fence: a newer job changed it (fence ${seen} > this job's ${fence}); this job lost its pair lock and must not touch the pair`)
}
export type Backend = 'iptables' | 'nftables'
export const LIVE_KINDS = ['ruleset', 'routes', 'rules'] as const
export type LiveKind = (typeof LIVE_KINDS)[number]
export type LiveState = Record<LiveKind, string>

/**
 * Shell functions printing the live state as the tools list it, one program per listing (no
 * pipes through sed, grep or sort: normaliseLive does that on this side). `ip route show table
 * all` lists both families. Apply records their output at confirm time; plan compares it,
 * normalised, with what they print now.
 */
export function liveFunctions(backend: Backend): string {
  return [
    backend === 'iptables' ? `live_ruleset() { { iptables-save; ip6tables-save; } 2>/dev/null; }` : `live_ruleset() { nft -s list ruleset 2>/dev/null; }`,
    `live_routes() { ip route show table all 2>/dev/null; }`,
    `live_rules() { ip -4 rule show 2>/dev/null; ip -6 rule show 2>/dev/null; }`,
  ].join('\n')
}

/**
 * The live state in the form drift is judged on. Pure. Ruleset: no comments, no counters.
 * Routes: no kernel-made or local-table routes (those follow the VIPs and the links, not the
 * config), sorted. Rules as listed. Idempotent: a copy recorded already normalised (by hafw
 * before it did this here) compares equal.
 */
export function normaliseLive(kind: LiveKind, text: string): string {
  let lines = text.split('\n').filter((l) => l !== '')
  switch (kind) {
    case 'ruleset':
      lines = lines.filter((l) => !l.startsWith('#')).map((l) => l.replace(/ \[[0-9]*:[0-9]*\]$/, ''))
      break
    case 'routes':
      // byte order, as `sort` in the C locale
      lines = lines.filter((l) => !l.includes(' table local') && !l.includes('proto kernel')).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
      break
  }
  return lines.map((l) => `${l}\n`).join('')
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
  /** `ip -o addr show`: both families, for who holds the VIPs */
  addr: string
}

/** Where a generation keeps the live state it recorded at confirm time. */
const RECORDED = new RegExp(`^${GENERATIONS}/(\\d+)/live/(${LIVE_KINDS.join('|')})$`)

const sec = (kind: string, arg: string) => `printf '\\n@@hafw %s %s\\n' ${shellQuote(kind)} ${shellQuote(arg)}`

/** The read script for these paths and units (exported for tests and for apply's re-read). */
export function readScript(paths: readonly string[], units: readonly string[], backend: Backend): string {
  const lines = ['set -u', 'PATH=/usr/sbin:/usr/bin:/sbin:/bin', liveFunctions(backend), `G=${GENERATIONS}`, `cur=; read -r cur 2>/dev/null < ${NODE_DIR}/current`]
  // A handful of processes whatever the number of files and units: one stat and one base64 of
  // all existing files and the live state the current generation recorded (split again by
  // their sizes), one systemctl for all units.
  lines.push(
    'set --',
    ...(paths.length ? [`for p in ${paths.map(shellQuote).join(' ')}; do if [ -f "$p" ]; then set -- "$@" "$p"; else printf '\\n@@hafw absent %s\\n' "$p"; fi; done`] : []),
    `if [ -n "$cur" ]; then for k in ${LIVE_KINDS.join(' ')}; do if [ -f "$G/$cur/live/$k" ]; then set -- "$@" "$G/$cur/live/$k"; fi; done; fi`,
    `if [ $# -gt 0 ]; then ${sec('files', '-')}; stat -c '%s %a %U:%G %n' -- "$@"; ${sec('data', '-')}; cat -- "$@" | base64 -w0; fi`,
  )
  if (units.length) lines.push(`${sec('units', '-')}; systemctl show -p UnitFileState -p ActiveState -- ${units.map(shellQuote).join(' ')} 2>/dev/null`)
  lines.push(
    // Builtins where a program would do (each program start counts at a rollout's rate; not
    // `read` over a long file: dash reads it a byte per call). The live state is text whose
    // lines never start with "@@hafw " (ruleset, route, rule and address listings): it travels
    // as it is.
    `${sec('gen', '-')}; printf '%s' "$cur"`,
    `${sec('gens', '-')}; ${forEachGeneration(`s=pending; [ -e "$d/confirmed" ] && s=confirmed; [ -e "$d/rolled-back" ] && s=rolled-back; printf '%s:%s ' "$g" "$s"`)}`,
    ...LIVE_KINDS.map((k) => `${sec('live', k)}; live_${k}`),
    `${sec('addr', '-')}; ip -o addr show`,
    `${sec('end', '-')}`,
  )
  return lines.join('\n') + '\n'
}


/** Parse what readScript printed. Pure. `units`: the units readScript was given, in order. */
export function parseRead(out: string, label = 'node', units: readonly string[] = []): NodeState {
  const st: NodeState = { files: {}, generation: null, generations: [], confirmed: [], recorded: null, live: { ruleset: '', routes: '', rules: '' }, units: {}, addr: '' }
  const parts = out.split('\n@@hafw ')
  if (!parts.some((p) => p.startsWith('end '))) throw new HafwError(`${label}: reading the node's state was cut short`)
  const recorded: Partial<LiveState> = {}
  let stats: { size: number; mode: string; owner: string; path: string }[] = []
  for (const u of units) st.units[u] = { enabled: '', active: '' }
  for (const part of parts.slice(1)) {
    const nl = part.indexOf('\n')
    const head = nl < 0 ? part : part.slice(0, nl)
    const body = nl < 0 ? '' : part.slice(nl + 1)
    const sp = head.indexOf(' ')
    const kind = head.slice(0, sp)
    const arg = head.slice(sp + 1)
    switch (kind) {
      case 'files':
        stats = body.split('\n').flatMap((l) => {
          const m = /^(\d+) (\S+) (\S+) (.*)$/.exec(l)
          return m ? [{ size: Number(m[1]), mode: m[2]!, owner: m[3]!, path: m[4]! }] : []
        })
        break
      case 'data': {
        const data = Buffer.from(body.trim(), 'base64')
        if (data.length !== stats.reduce((a, f) => a + f.size, 0)) throw new HafwError(`${label}: a managed file changed while it was read; read again`)
        let at = 0
        for (const f of stats) {
          st.files[f.path] = { path: f.path, exists: true, content: data.subarray(at, (at += f.size)).toString('utf8'), mode: f.mode, owner: f.owner }
        }
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
      case 'live':
        st.live[arg as LiveKind] = normaliseLive(arg as LiveKind, body)
        break
      case 'units': {
        // `systemctl show`: one block of KEY=value lines per unit, in the order asked
        const blocks = body.trim().split(/\n\s*\n/)
        if (blocks.length !== units.length) break
        units.forEach((u, i) => {
          const kv = Object.fromEntries(blocks[i]!.split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]))
          st.units[u] = { enabled: kv.UnitFileState ?? '', active: kv.ActiveState ?? '' }
        })
        break
      }
      case 'addr':
        st.addr = body
        break
    }
  }
  // the current generation's recorded live state came with the files
  for (const [path, f] of Object.entries(st.files)) {
    const m = RECORDED.exec(path)
    if (!m) continue
    if (Number(m[1]) === st.generation) recorded[m[2] as LiveKind] = normaliseLive(m[2] as LiveKind, f.content ?? '')
    delete st.files[path]
  }
  if (LIVE_KINDS.every((k) => recorded[k] !== undefined)) st.recorded = recorded as LiveState
  return st
}

/** Read a node's state over an open session: one round trip. */
export async function readNodeState(s: Session, paths: readonly string[], units: readonly string[], backend: Backend, signal?: AbortSignal): Promise<NodeState> {
  const r = await s.exec('sh -s', { input: readScript(paths, units, backend), timeoutMs: 60_000, ...(signal ? { signal } : {}) })
  if (r.code !== 0) throw new HafwError(`${s.label}: reading the node's state failed (exit ${r.code}): ${r.stderr.trim().split('\n').slice(-3).join(' ')}`)
  return parseRead(r.stdout, s.label, units)
}
