/*
 * `conntrackd -s [network|cache|runtime|link|rsqueue|queue]` as conntrackd 1.4.7 prints it.
 * Every number lands in `counters` under a dotted path built from the section headers and the
 * tab indentation, e.g.
 *   cache_internal.current_active_connections   (-s)        cache_internal.active_objects (-s cache)
 *   message_tracking.lost_msgs                  (-s)        network_statistics.recv.malformed_messages
 *   sequence_tracking_statistics.recv.packets_lost          link.sync0.error_send
 * and the fields hafw checks are lifted into typed properties.
 */

export interface CacheCounters {
  /** Entries in the cache now. */
  active?: number
  created?: number
  createFailed?: number
  updated?: number
  updateFailed?: number
  destroyed?: number
  destroyFailed?: number
}

export interface SyncLinkStats {
  /** UDP or TCP */
  transport: string
  device: string
  /** RUNNING or DOWN (`-s link` only) */
  status?: string
  /** ACTIVE or BACKUP among redundant links (`-s link` only) */
  role?: string
  bytesSent?: number
  bytesRecv?: number
  packetsSent?: number
  packetsRecv?: number
  errorsSend?: number
  errorsRecv?: number
}

export interface ConntrackdStats {
  internal?: CacheCounters
  external?: CacheCounters
  links: SyncLinkStats[]
  /** "message tracking" (-s): sync messages received malformed, and lost (sequence gaps). */
  messages?: { malformed?: number; lost?: number }
  /** -s network */
  network?: { recvMalformed?: number; sendMalformed?: number; packetsLost?: number; packetsBefore?: number }
  /** "daemon uptime: 1 min" (-s runtime) */
  uptime?: string
  counters: Record<string, number>
  /** Lines that matched no known shape (kept so a caller can tell an unexpected format). */
  unparsed: string[]
}

const slug = (s: string): string => s.toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_|_$/g, '')

export function parseConntrackdStats(text: string): ConntrackdStats {
  const counters: Record<string, number> = {}
  const links: SyncLinkStats[] = []
  const unparsed: string[] = []
  let uptime: string | undefined
  let levels: string[] = []
  let link: SyncLinkStats | undefined
  let skipping = false

  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '')
    if (!line.trim()) continue
    let m = /^(\w+) traffic (?:\(active device=(\S+)\)|device=(\S+) status=(\S+) role=(\S+)):$/.exec(line)
    if (m) {
      link = { transport: m[1]!, device: m[2] ?? m[3]! }
      if (m[4]) link.status = m[4]
      if (m[5]) link.role = m[5]
      // The general and network outputs repeat the active link: keep one entry per device.
      const i = links.findIndex((l) => l.device === link!.device)
      if (i >= 0) links[i] = { ...links[i]!, ...link }
      else links.push(link)
      link = links[i >= 0 ? i : links.length - 1]!
      levels = [`link.${link.device}`]
      skipping = false
      continue
    }
    if ((m = /^resent queue \(len=(\d+)\)$/.exec(line))) {
      counters['rsqueue.len'] = Number(m[1])
      skipping = true // the queued messages follow, one per line
      continue
    }
    if ((m = /^daemon uptime: (.+)$/.exec(line))) {
      uptime = m[1]!.trim()
      continue
    }
    // "   3056 Bytes sent       1728 Bytes recv", "   0 Malformed msgs     0 Lost msgs"
    if (/^\s*\d+ [A-Za-z]/.test(line)) {
      const prefix = levels[0] ? levels[0] + '.' : ''
      for (const p of line.matchAll(/(\d+) ([A-Za-z][A-Za-z ]*?)(?=\s{2,}|\s*$)/g)) {
        const key = slug(p[2]!)
        const value = Number(p[1])
        counters[prefix + key] = value
        if (link && levels[0] === `link.${link.device}`) setLinkCounter(link, key, value)
      }
      continue
    }
    if (skipping) continue
    const tabs = /^\t*/.exec(line)![0].length
    let body = line.slice(tabs)
    // "-s cache": "cache:internal\tactive objects:\t\t 10" opens the section on the same line
    if ((m = /^(cache:\w+)\t+(.+)$/.exec(body))) {
      levels = [slug(m[1]!)]
      body = m[2]!
    } else if ((m = /^([^\t:]+(?::\w+)?):$/.exec(body.trimEnd()))) {
      levels = levels.slice(0, tabs)
      levels[tabs] = slug(m[1]!)
      link = undefined
      continue
    }
    m = /^([^\t]+?):\s+(\d+)\s*(?:\/\s*(\d+)|\s+failed:\s+(\d+))?\s*$/.exec(body)
    if (!m) {
      unparsed.push(line)
      continue
    }
    const label = m[1]!
    const depth = Math.max(tabs, 1)
    const prefix = levels.slice(0, depth).filter(Boolean).join('.')
    const at = (k: string) => (prefix ? `${prefix}.${k}` : k)
    let base = slug(label)
    if (m[3] !== undefined) {
      // "creation OK/failed: 14/0", "active/total entries: 10/10"
      const words = label.split(' ')
      const w = words.findIndex((x) => x.includes('/'))
      const [a, b] = words[w]!.split('/')
      const pre = words.slice(0, w)
      const post = words.slice(w + 1)
      counters[at(slug([...pre, a, ...post].join(' ')))] = Number(m[2])
      counters[at(slug([...pre, b, ...post].join(' ')))] = Number(m[3])
      base = slug(pre.join(' ') || post.join(' '))
    } else {
      counters[at(base)] = Number(m[2])
      if (m[4] !== undefined) counters[at(base + '_failed')] = Number(m[4])
    }
    levels = levels.slice(0, depth)
    levels[depth] = base
  }

  const c = (k: string): number | undefined => counters[k]
  const cache = (side: string): CacheCounters | undefined => {
    const p = `cache_${side}.`
    const r: CacheCounters = {
      active: c(p + 'current_active_connections') ?? c(p + 'active_objects'),
      created: c(p + 'connections_created') ?? c(p + 'creation_ok'),
      createFailed: c(p + 'connections_created_failed') ?? c(p + 'creation_failed'),
      updated: c(p + 'connections_updated') ?? c(p + 'update_ok'),
      updateFailed: c(p + 'connections_updated_failed') ?? c(p + 'update_failed'),
      destroyed: c(p + 'connections_destroyed') ?? c(p + 'deletion_created'),
      destroyFailed: c(p + 'connections_destroyed_failed') ?? c(p + 'deletion_failed'),
    }
    return compact(r)
  }
  const stats: ConntrackdStats = { links, counters, unparsed }
  const internal = cache('internal')
  const external = cache('external')
  if (internal) stats.internal = internal
  if (external) stats.external = external
  const messages = compact({ malformed: c('message_tracking.malformed_msgs'), lost: c('message_tracking.lost_msgs') })
  if (messages) stats.messages = messages
  const network = compact({
    recvMalformed: c('network_statistics.recv.malformed_messages'),
    sendMalformed: c('network_statistics.send.malformed_messages'),
    packetsLost: c('sequence_tracking_statistics.recv.packets_lost'),
    packetsBefore: c('sequence_tracking_statistics.recv.packets_before'),
  })
  if (network) stats.network = network
  if (uptime !== undefined) stats.uptime = uptime
  return stats
}

function setLinkCounter(l: SyncLinkStats, key: string, v: number): void {
  const field = ({
    bytes_sent: 'bytesSent', bytes_recv: 'bytesRecv', pckts_sent: 'packetsSent', pckts_recv: 'packetsRecv',
    error_send: 'errorsSend', error_recv: 'errorsRecv',
  } as const)[key as 'bytes_sent']
  if (field) l[field] = v
}

/** The object without undefined fields, or undefined when nothing is left. */
function compact<T extends object>(o: T): T | undefined {
  const e = Object.entries(o).filter(([, v]) => v !== undefined)
  return e.length ? (Object.fromEntries(e) as T) : undefined
}
