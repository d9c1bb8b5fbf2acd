import { homedir } from 'node:os'
import { join, resolve } from 'node:path'

/** Where hafw keeps state it owns (lab, embedded Redis, reports). Override with HAFW_STATE_DIR. */
export function stateDir(): string {
  if (process.env.HAFW_STATE_DIR) return resolve(process.env.HAFW_STATE_DIR)
  if (process.getuid?.() === 0) return '/var/lib/hafw'
  return join(process.env.XDG_STATE_HOME ?? join(homedir(), '.local', 'state'), 'hafw')
}

/** Caches that survive clones and `lab down` (the lab's root filesystem). Override with HAFW_CACHE_DIR. */
export function cacheDir(): string {
  if (process.env.HAFW_CACHE_DIR) return resolve(process.env.HAFW_CACHE_DIR)
  if (process.getuid?.() === 0) return '/var/cache/hafw'
  return join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'hafw')
}

/** The repository's templates/ folder, found from this file (packages/core/dist/paths.js). */
export function repoRoot(): string {
  return resolve(new URL('../../..', import.meta.url).pathname)
}
