import { randomBytes } from 'node:crypto'
import type { Redis } from 'ioredis'
import type { Lease } from '@hafw/core'

/**
 * Per-pair mutual exclusion across every worker and in-process run: one Redis key per pair
 * holding "<token> <holder>", set with NX and a TTL, renewed while the job runs, deleted only by
 * its owner. A holder that dies (kill -9) stops renewing and the key expires after ttlMs.
 * All pairs of a job are taken in one script, all or none, so two multi-pair jobs never
 * deadlock holding one pair each.
 *
 * A TTL lock can still be held twice: a holder whose process stalls longer than the TTL (CPU
 * starvation, a frozen VM, SIGSTOP) wakes up believing it holds a key that expired and that
 * another job took meanwhile. So each acquisition also gets a fencing token per pair, larger
 * than any earlier one for that pair (max(last + 1, Redis time in ms): it keeps growing across a
 * Redis that lost its data), and whatever the run writes carries it; the writes' target refuses
 * a token lower than one it has seen (apply's node scripts do, see @hafw/apply).
 */
const ACQUIRE = `
local n = #KEYS / 2
for i = 1, n do
  local v = redis.call('GET', KEYS[i])
  if v then return {i, v} end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {0}
for i = 1, n do
  redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[2])
  local f = math.max((tonumber(redis.call('GET', KEYS[n + i])) or 0) + 1, now)
  local s = string.format('%.0f', f)
  redis.call('SET', KEYS[n + i], s)
  out[#out + 1] = s
end
return out`

const RENEW = `
local n = 0
for _, k in ipairs(KEYS) do
  if redis.call('GET', k) == ARGV[1] then redis.call('PEXPIRE', k, ARGV[2]); n = n + 1 end
end
return n`

const RELEASE = `
local n = 0
for _, k in ipairs(KEYS) do
  if redis.call('GET', k) == ARGV[1] then redis.call('DEL', k); n = n + 1 end
end
return n`

export interface HeldLock extends Lease {
  pairs: string[]
  /** Resolves once the keys are deleted (only if still ours). */
  release(): Promise<void>
}

export type LockAttempt = { ok: true; lock: HeldLock } | { ok: false; pair: string; holder: string }

export class PairLocks {
  constructor(
    private readonly redis: Redis,
    private readonly keyOf: (pair: string) => string,
    private readonly ttlMs: number,
  ) {}

  /**
   * Try once to take every pair. On success the lock renews itself every ttl/3. `onLost` fires
   * when a renewal finds a key no longer ours, and also before the key can expire when
   * renewals stop getting through (two missed in a row: a third of the TTL is left for the
   * operation to stop). The lease is counted from when a renewal was sent, not answered.
   */
  async tryAcquire(pairs: string[], holder: string, onLost: (why: string) => void): Promise<LockAttempt> {
    if (pairs.length === 0) return { ok: true, lock: { pairs, fence: {}, release: async () => {} } }
    const keys = pairs.map(this.keyOf)
    const value = `${randomBytes(12).toString('hex')} ${holder}`
    const sent = Date.now()
    const r = (await this.redis.eval(ACQUIRE, keys.length * 2, ...keys, ...keys.map((k) => `${k}:fence`), value, this.ttlMs)) as [0, ...string[]] | [number, string]
    if (r[0] !== 0) return { ok: false, pair: pairs[r[0] - 1]!, holder: String(r[1]).slice(String(r[1]).indexOf(' ') + 1) }
    const fence = Object.fromEntries(pairs.map((p, i) => [p, Number(r[i + 1])]))

    let validFrom = sent
    let released = false
    const lose = (why: string) => {
      clearInterval(timer)
      if (!released) onLost(why)
    }
    const timer = setInterval(async () => {
      // A stalled event loop runs this late: past two thirds of the lease, stop without asking.
      const at = Date.now()
      if (at - validFrom > (this.ttlMs * 2) / 3) return lose(`lost the lock on ${pairs.join(', ')}: not renewed for ${at - validFrom} ms of its ${this.ttlMs} ms lease`)
      try {
        const n = (await this.redis.eval(RENEW, keys.length, ...keys, value, this.ttlMs)) as number
        if (n === keys.length) validFrom = Math.max(validFrom, at)
        else lose(`lost the lock on ${pairs.join(', ')} (expired while running)`)
      } catch {
        // Redis unreachable: the next tick decides from validFrom
      }
    }, Math.max(50, Math.floor(this.ttlMs / 3)))
    timer.unref()
    return {
      ok: true,
      lock: {
        pairs,
        fence,
        release: async () => {
          released = true
          clearInterval(timer)
          await this.redis.eval(RELEASE, keys.length, ...keys, value)
        },
      },
    }
  }

  /** Who holds a pair now, if anyone. */
  async holder(pair: string): Promise<string | undefined> {
    const v = await this.redis.get(this.keyOf(pair))
    return v ? v.slice(v.indexOf(' ') + 1) : undefined
  }
}
