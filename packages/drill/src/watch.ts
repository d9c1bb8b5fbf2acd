import { HafwError } from '@hafw/core'
import type { NodeModel } from '@hafw/inventory'
import { RUNTIME } from '@hafw/render/layout'
import { ADDR_COMMAND, parseAddrLine, type SessionPool } from '@hafw/verify'

/*
 * What the node taking over says about itself, on its own clock: the moment each VIP appears
 * (`ip -ts -o monitor address`, started before the trigger: event-driven, microseconds), the
 * keepalived journal's "Entering MASTER STATE", and hafw-notify's state.json with the commit.
 */

export interface VipWatch {
  /** node ms when the last missing VIP appeared; 'held' when the node had them all from the start; null on timeout or cancel */
  done: Promise<number | 'held' | null>
  cancel(): void
}

/**
 * "[2026-11-22T01:07:38.230539] 5: ens5    inet 192.168.99.1/32 ..." or "... inet6 fd00:10::10/64
 * scope global nodad ..." (TZ=UTC) -> ms and address (parseAddrLine: IPv6 canonical, link-local
 * left out). `tentative`: an IPv6 address in duplicate address detection takes no traffic yet;
 * ip reports it again once it is usable. Pure.
 */
export function parseMonitorLine(line: string): { t: number; ip: string; deleted: boolean; tentative?: true } | null {
  const m = /^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?\]\s+(Deleted\s+)?(.*)$/.exec(line)
  const a = m ? parseAddrLine(m[4]!) : null
  if (!m || !a) return null
  return { t: Date.parse(`${m[1]}Z`) + Number(m[2] ?? 0) * 1000, ip: a.ip, deleted: !!m[3], ...(a.tentative ? { tentative: true as const } : {}) }
}

/** Watch a node until it holds every one of `vips` (both families). Resolves once the watch is running. */
export async function watchVips(pool: SessionPool, node: NodeModel, vips: string[], timeoutMs: number, signal: AbortSignal): Promise<VipWatch> {
  const secs = Math.ceil(timeoutMs / 1000)
  const cmd = `${ADDR_COMMAND} | sed 's/^/@@have /'; echo @@listening; TZ=UTC exec timeout ${secs} ip -ts -o monitor address`
  const stream = await pool.run(node, (s) => s.openStream(cmd, { timeoutMs: timeoutMs + 10_000, signal }))
  // VIP -> when it appeared (0: held before the watch began)
  const have = new Map<string, number>()
  let buf = ''
  let resolveStarted!: () => void
  const started = new Promise<void>((r) => (resolveStarted = r))
  const done = (async (): Promise<number | 'held' | null> => {
    try {
      for await (const chunk of stream.stdout) {
        buf += (chunk as Buffer).toString('utf8')
        let nl: number
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl)
          buf = buf.slice(nl + 1)
          const held = line.startsWith('@@have ') ? parseAddrLine(line.slice(7)) : null
          if (held && !held.tentative) have.set(held.ip, 0)
          const ev = parseMonitorLine(line)
          if (ev && (ev.deleted || ev.tentative)) have.delete(ev.ip)
          else if (ev) have.set(ev.ip, ev.t)
          const all = vips.every((v) => have.has(v))
          if (line === '@@listening') {
            resolveStarted()
            if (all) return 'held'
          } else if (all && ev) {
            return Math.max(...vips.map((v) => have.get(v)!))
          }
        }
      }
      return null
    } catch {
      return null
    } finally {
      stream.cancel(new HafwError('watch done'))
      resolveStarted()
    }
  })()
  await started
  return { done, cancel: () => stream.cancel(new HafwError('watch cancelled')) }
}

/** keepalived's "(INSTANCE) Entering STATE" lines since a node time (s). Pure parser below. */
export interface VrrpTransition {
  t: number
  instance: string
  state: string
}

export function parseJournal(text: string): VrrpTransition[] {
  const out: VrrpTransition[] = []
  for (const m of text.matchAll(/^(\d+\.\d+) \S+ \S+: \(([^)]+)\) Entering (\w+) STATE/gm)) out.push({ t: Math.round(Number(m[1]) * 1000), instance: m[2]!, state: m[3]! })
  return out
}

export async function readJournal(pool: SessionPool, node: NodeModel, sinceNodeMs: number, signal: AbortSignal): Promise<VrrpTransition[]> {
  const r = await pool.run(node, (s) => s.exec(`journalctl -u keepalived.service -o short-unix --no-pager --since @${Math.floor(sinceNodeMs / 1000)} 2>/dev/null`, { timeoutMs: 20_000, signal }))
  return parseJournal(r.stdout).filter((x) => x.t >= sinceNodeMs - 50)
}

/** hafw-notify's state.json (packages/render/README.md). */
export interface NotifyRecord {
  role: 'primary' | 'backup' | 'fault'
  phase: string
  since_ms: number
  ok: boolean
  commit: { exit: number; start_ms: number; end_ms: number; duration_ms: number; external_entries: number | null; kernel_before: number | null; kernel_after: number | null } | null
}

/** Poll state.json until a transition to `role` that began after sinceNodeMs is done; null on timeout. */
export async function waitTransition(pool: SessionPool, node: NodeModel, role: NotifyRecord['role'], sinceNodeMs: number, timeoutMs: number, signal: AbortSignal): Promise<NotifyRecord | null> {
  const end = Date.now() + timeoutMs
  while (Date.now() < end) {
    const r = await pool.run(node, (s) => s.exec(`cat ${RUNTIME.runDir}/state.json 2>/dev/null`, { timeoutMs: 10_000, signal }))
    try {
      const j = JSON.parse(r.stdout) as NotifyRecord
      if (j.role === role && j.since_ms >= sinceNodeMs && j.phase === 'done') return j
    } catch {
      // not there yet, or being replaced
    }
    await new Promise((res) => setTimeout(res, 100))
  }
  return null
}
