import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { parseConntrackdStats, parseFlowsSync } from '@hafw/verify'

// Real `conntrackd -s ...` output of conntrackd 1.4.7 (test/fixtures/conntrack/make-samples.sh).
const DIR = 'test/fixtures/conntrack/'
const read = (f: string) => readFileSync(DIR + f, 'utf8')
const stats = (f: string) => parseConntrackdStats(read(f))

describe('conntrackd -s', () => {
  it('reads the general statistics: caches, traffic, the sync link, message tracking', () => {
    const s = stats('stats-active.txt')
    expect(s.unparsed).toEqual([])
    // taken right after `conntrackd -i`: the counts agree with the dump
    expect(s.internal!.active).toBe(parseFlowsSync(read('internal.txt')).length)
    expect(s.internal).toMatchObject({ createFailed: 0, updateFailed: 0, destroyFailed: 0 })
    expect(s.internal!.created).toBeGreaterThanOrEqual(s.internal!.active!)
    expect(s.external).toMatchObject({ active: 0, created: 0 })
    expect(s.links).toHaveLength(1)
    expect(s.links[0]).toMatchObject({ transport: 'UDP', device: 'sync0', errorsSend: 0, errorsRecv: 0 })
    expect(s.links[0]!.packetsSent).toBeGreaterThan(0)
    expect(s.messages).toEqual({ malformed: 0, lost: 0 })
    expect(s.counters).toHaveProperty('traffic_processed.bytes')
  })

  it('reads lost messages on a standby whose sync traffic was dropped for a while', () => {
    const s = stats('stats-standby-lost.txt')
    expect(s.unparsed).toEqual([])
    expect(s.messages!.lost).toBeGreaterThan(0)
    expect(s.messages!.malformed).toBe(0)
    expect(s.external!.active).toBeGreaterThanOrEqual(parseFlowsSync(read('external.txt')).length)
    const n = stats('stats-standby-lost-network.txt')
    expect(n.network!.packetsLost).toBe(s.messages!.lost)
    expect(n.network).toMatchObject({ recvMalformed: 0, sendMalformed: 0, packetsBefore: 0 })
    expect(n.counters['network_statistics.recv.bad_message_size']).toBe(0)
  })

  it('reads -s link: status and role per dedicated link', () => {
    expect(stats('stats-active-link.txt').links).toEqual([
      expect.objectContaining({ device: 'sync0', status: 'RUNNING', role: 'ACTIVE' }),
    ])
    const down = stats('stats-link-down.txt').links[0]!
    expect(down).toMatchObject({ device: 'sync0', status: 'DOWN', role: 'ACTIVE' })
    expect(down.errorsSend).toBeGreaterThan(0)
  })

  it('reads a standby syncing over IPv6 (IPv6_address in the UDP section): the same shapes', () => {
    const s = stats('ipv6-stats-standby.txt')
    expect(s.unparsed).toEqual([])
    // taken right after its `conntrackd -e` (make-samples-ipv6.sh): every entry, both families
    expect(s.external).toMatchObject({ active: parseFlowsSync(read('ipv6-external.txt')).length, createFailed: 0, updateFailed: 0 })
    expect(s.internal!.active).toBe(0)
    expect(s.links).toEqual([expect.objectContaining({ transport: 'UDP', device: 'sync0', errorsSend: 0, errorsRecv: 0 })])
    expect(s.links[0]!.packetsRecv).toBeGreaterThan(0)
    expect(stats('ipv6-stats-standby-link.txt').links).toEqual([expect.objectContaining({ device: 'sync0', status: 'RUNNING', packetsRecv: s.links[0]!.packetsRecv })])
  })

  it('reads -s cache with its nested counters', () => {
    const s = stats('stats-active-cache.txt')
    expect(s.unparsed).toEqual([])
    expect(s.internal!.active).toBe(stats('stats-active.txt').internal!.active)
    expect(s.counters).toMatchObject({
      'cache_internal.active_entries': s.internal!.active,
      'cache_internal.creation.no_memory_available': 0,
      'cache_internal.creation.no_space_left_in_cache': 0,
      'cache_internal.update.entry_not_found': 0,
      'cache_internal.deletion.entry_not_found': 0,
      'cache_external.active_objects': 0,
    })
  })

  it('reads -s runtime and -s queue', () => {
    const r = stats('stats-active-runtime.txt')
    expect(r.unparsed).toEqual([])
    expect(r.uptime).toMatch(/^\d+ min$/)
    expect(r.counters['netlink_stats.events_received']).toBeGreaterThan(0)
    expect(r.counters['netlink_stats.current_buffer_size_in_bytes']).toBeGreaterThan(0)
    expect(r.counters['runtime_stats.child_process_failed.child_process_segfault']).toBe(0)
    const q = stats('stats-active-queue.txt')
    expect(q.unparsed).toEqual([])
    expect(q.counters).toMatchObject({ 'queue_rsqueue.maximum_elements': 131072, 'queue_errorq.maximum_elements': 128, 'queue_txqueue.not_enough_space_errors': 0 })
    expect(q.counters).toHaveProperty('allocated_queue_nodes')
  })

  it('leaves what it does not know in unparsed (conntrackd not running)', () => {
    const s = stats('stats-not-running.txt')
    expect(s.internal).toBeUndefined()
    expect(s.unparsed[0]).toMatch(/can't connect: is conntrackd running\?/)
  })

  it('reads the resend queue length', () => {
    const s = parseConntrackdStats('resent queue (len=2)\ncontrol -> seq:1795307026 flags:8\ncontrol -> seq:1795307027 flags:8\n')
    expect(s.counters['rsqueue.len']).toBe(2)
    expect(s.unparsed).toEqual([])
  })
})
