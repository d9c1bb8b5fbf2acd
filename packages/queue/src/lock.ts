import { randomBytes } from 'node:crypto'
import type { Redis } from 'ioredis'

/**
 * Per-pair mutual exclusion across every worker and in-process run: one Redis key per pair
 * holding "<token> <holder>", set with NX and a TTL, renewed while the job runs, deleted only by
 * its owner. A holder that dies (kill -9) stops renewing and the key expires after ttlMs.
 * All pairs of a job are taken in one script, all or none, so two multi-pair jobs never
 * deadlock holding one pair each.
 */
const ACQUIRE = `
for i, k in ipairs(KEYS) do
  local v = redis.call('GET', k)
  if v then return {i, v} end
end
for _, k in ipairs(KEYS) do redis.call('SET', k, ARGV[1], 'PX', ARGV[2]) end
return 0`

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

export interface HeldLock {
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
   * Try once to take every pair. On success the lock renews itself every ttl/3; `onLost` fires
   * if a renewal finds a key no longer ours or renewals have failed for longer than the TTL
   * (the operation must then stop: another job may already hold the pair).
   */
  async tryAcquire(pairs: string[], holder: string, onLost: (why: string) => void): Promise<LockAttempt> {
    if (pairs.length === 0) return { ok: true, lock: { pairs, release: async () => {} } }
    const keys = pairs.map(this.keyOf)
    const value = `${randomBytes(12).toString('hex')} ${holder}`
    const r = (await this.redis.eval(ACQUIRE, keys.length, ...keys, value, this.ttlMs)) as 0 | [number, string]
    if (r !== 0) return { ok: false, pair: pairs[r[0] - 1]!, holder: r[1].slice(r[1].indexOf(' ') + 1) }

    let lastOk = Date.now()
    let released = false
    const timer = setInterval(async () => {
      try {
        const n = (await this.redis.eval(RENEW, keys.length, ...keys, value, this.ttlMs)) as number
        if (released) return
        if (n === keys.length) lastOk = Date.now()
        else {
          clearInterval(timer)
          onLost(`lost the lock on ${pairs.join(', ')} (expired while running)`)
        }
      } catch {
        if (!released && Date.now() - lastOk > this.ttlMs) {
          clearInterval(timer)
          onLost(`could not renew the lock on ${pairs.join(', ')} for ${this.ttlMs} ms (Redis unreachable)`)
        }
      }
    }, Math.max(50, Math.floor(this.ttlMs / 3)))
    timer.unref()
    return {
      ok: true,
      lock: {
        pairs,
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
