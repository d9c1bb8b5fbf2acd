import type { RedisOptions } from 'ioredis'
import { Redis } from 'ioredis'
import { createConnection } from 'node:net'
import { readFileSync } from 'node:fs'
import { mkdir, open, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { exec, HafwError, sleep, stateDir, which } from '@hafw/core'

/**
 * Where the queue's Redis is. Without REDIS_URL (or REDIS_SENTINELS) hafw runs a private
 * redis-server on a unix socket under its state directory, so one machine needs nothing extra.
 *
 *   REDIS_URL=redis://[user:pass@]host[:port][/db]     plain TCP
 *   REDIS_URL=rediss://...                              TLS (REDIS_TLS_INSECURE=1 skips verification)
 *   REDIS_SENTINELS=host:port,host:port REDIS_SENTINEL_NAME=mymaster
 *     [REDIS_PASSWORD=... REDIS_SENTINEL_PASSWORD=... REDIS_DB=n REDIS_TLS=1]
 */
export interface RedisTarget {
  options: RedisOptions
  /** For messages: never contains a password. */
  describe: string
  /** Set when hafw runs the server itself. */
  embedded?: EmbeddedRedis
}

export async function resolveRedis(env: NodeJS.ProcessEnv = process.env): Promise<RedisTarget> {
  if (env.REDIS_SENTINELS) return sentinelTarget(env)
  if (env.REDIS_URL) return urlTarget(env.REDIS_URL, env)
  const embedded = await ensureEmbeddedRedis()
  return { options: { path: embedded.socket }, describe: `embedded redis-server (${embedded.socket})`, embedded }
}

function urlTarget(url: string, env: NodeJS.ProcessEnv): RedisTarget {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    throw new HafwError(`REDIS_URL: not a URL (expected redis://host:port or rediss://host:port)`)
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new HafwError(`REDIS_URL: unsupported scheme ${u.protocol} (expected redis: or rediss:)`)
  const db = u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0
  if (!Number.isInteger(db) || db < 0) throw new HafwError(`REDIS_URL: database must be a number, found ${u.pathname.slice(1)}`)
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1')
  const options: RedisOptions = { host, port: u.port ? Number(u.port) : 6379, db }
  if (u.username) options.username = decodeURIComponent(u.username)
  if (u.password) options.password = decodeURIComponent(u.password)
  if (u.protocol === 'rediss:') options.tls = { servername: host, rejectUnauthorized: env.REDIS_TLS_INSECURE !== '1' }
  return { options, describe: `${u.protocol}//${host}:${options.port}/${db}` }
}

function sentinelTarget(env: NodeJS.ProcessEnv): RedisTarget {
  const name = env.REDIS_SENTINEL_NAME
  if (!name) throw new HafwError('REDIS_SENTINELS is set but REDIS_SENTINEL_NAME (the monitored master name) is not')
  const sentinels = env.REDIS_SENTINELS!.split(',').map((s) => {
    const m = /^\s*\[?([^\]\s]+?)\]?:(\d+)\s*$/.exec(s)
    if (!m) throw new HafwError(`REDIS_SENTINELS: expected host:port[,host:port...], found "${s}"`)
    return { host: m[1]!, port: Number(m[2]) }
  })
  const options: RedisOptions = { sentinels, name, db: Number(env.REDIS_DB ?? 0) }
  if (env.REDIS_PASSWORD) options.password = env.REDIS_PASSWORD
  if (env.REDIS_SENTINEL_PASSWORD) options.sentinelPassword = env.REDIS_SENTINEL_PASSWORD
  if (env.REDIS_TLS === '1') {
    options.tls = {}
    options.enableTLSForSentinelMode = true
  }
  return { options, describe: `sentinel ${name} via ${sentinels.map((s) => `${s.host}:${s.port}`).join(',')}` }
}

/**
 * A connection as bullmq workers need it: commands wait for reconnection instead of failing
 * (maxRetriesPerRequest null), so a Redis restart pauses work instead of failing jobs.
 */
export function connect(target: RedisTarget, extra: RedisOptions = {}): Redis {
  return new Redis({ ...target.options, maxRetriesPerRequest: null, ...extra })
}

/** Fail fast with a clear message when Redis is not reachable, instead of hanging on reconnects. */
export async function assertReachable(redis: Redis, target: RedisTarget, timeoutMs = 5000): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  let lastError: Error | undefined
  const onError = (e: Error) => (lastError = e)
  redis.on('error', onError)
  try {
    await Promise.race([
      redis.ping(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('timed out')), timeoutMs)
      }),
    ])
  } catch (e) {
    const why = lastError?.message ?? (e as Error).message
    throw new HafwError(`cannot reach Redis (${target.describe}): ${why}`, { transient: true, cause: e })
  } finally {
    clearTimeout(timer)
    redis.off('error', onError)
  }
}

// ---- embedded redis-server -------------------------------------------------------------

export interface EmbeddedRedis {
  dir: string
  socket: string
  pidfile: string
  conf: string
  log: string
}

export function embeddedPaths(dir = join(stateDir(), 'redis')): EmbeddedRedis {
  return { dir, socket: join(dir, 'redis.sock'), pidfile: join(dir, 'redis.pid'), conf: join(dir, 'redis.conf'), log: join(dir, 'redis.log') }
}

/** PING over the unix socket without a client library: 'up', 'loading' (AOF replay) or 'down'. */
export function pingSocket(socket: string, timeoutMs = 1000): Promise<'up' | 'loading' | 'down'> {
  return new Promise((resolve) => {
    const c = createConnection(socket)
    let buf = ''
    const done = (r: 'up' | 'loading' | 'down') => {
      clearTimeout(timer)
      c.destroy()
      resolve(r)
    }
    const timer = setTimeout(() => done('down'), timeoutMs)
    c.on('connect', () => c.write('*1\r\n$4\r\nPING\r\n'))
    c.on('data', (d) => {
      buf += d.toString('latin1')
      if (buf.includes('\r\n')) done(buf.startsWith('+PONG') ? 'up' : buf.startsWith('-LOADING') ? 'loading' : 'down')
    })
    c.on('error', () => done('down'))
  })
}

/** Whether a process runs (a zombie waiting for its parent, e.g. a non-reaping PID 1, does not). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false
  }
  try {
    // /proc/PID/stat: "pid (comm) S ..." — comm may contain spaces, the state follows the last ")".
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== 'ENOENT' // gone, or no /proc: trust kill(0)
  }
}

/** The PID in the pidfile when that process is still a redis-server (PIDs get reused). */
async function serverPid(p: EmbeddedRedis): Promise<number | undefined> {
  const pid = Number((await readFile(p.pidfile, 'utf8').catch(() => '')).trim())
  if (!Number.isInteger(pid) || pid <= 0 || !alive(pid)) return undefined
  const cmd = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')
  return cmd.includes('redis-server') ? pid : undefined
}


async function tail(file: string, lines = 5): Promise<string> {
  return (await readFile(file, 'utf8').catch(() => '')).trim().split('\n').slice(-lines).join('\n')
}

/** Serialise starts: two CLIs starting at once must not run two servers on one AOF. */
async function withStartLock<T>(p: EmbeddedRedis, fn: () => Promise<T>): Promise<T> {
  const lock = join(p.dir, 'start.lock')
  for (let i = 0; ; i++) {
    try {
      const fh = await open(lock, 'wx')
      await fh.writeFile(String(process.pid))
      await fh.close()
      break
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e
      const holder = Number((await readFile(lock, 'utf8').catch(() => '')).trim())
      if (!holder || !alive(holder)) await rm(lock, { force: true })
      else if (i > 300) throw new HafwError(`${lock}: another hafw (PID ${holder}) has been starting redis-server for 30 s`)
      else await sleep(100)
    }
  }
  try {
    return await fn()
  } finally {
    await rm(lock, { force: true })
  }
}

/**
 * Start the private redis-server unless it already answers. AOF is on (appendfsync everysec:
 * every write reaches the kernel before Redis replies, so only a machine crash, not a process
 * crash, can lose the last second). No TCP port: only this machine's users with access to the
 * state directory can reach it.
 */
export async function ensureEmbeddedRedis(dir?: string): Promise<EmbeddedRedis & { pid: number; started: boolean }> {
  const p = embeddedPaths(dir)
  // sun_path is 108 bytes on Linux.
  if (Buffer.byteLength(p.socket) > 100) throw new HafwError(`${p.socket}: unix socket path too long; set HAFW_STATE_DIR to a shorter directory`)
  const up = async () => (await pingSocket(p.socket)) === 'up'
  if (await up()) return { ...p, pid: (await serverPid(p)) ?? 0, started: false }
  await mkdir(p.dir, { recursive: true, mode: 0o700 })
  return withStartLock(p, async () => {
    if (await up()) return { ...p, pid: (await serverPid(p)) ?? 0, started: false }
    let pid = await serverPid(p)
    let started = false
    if (!pid) {
      const bin = process.env.HAFW_REDIS_SERVER ?? (await which('redis-server'))
      if (!bin) throw new HafwError('redis-server not found: install it (apt-get install redis-server) or set REDIS_URL')
      await writeFile(p.conf, embeddedConf(p), { mode: 0o600 })
      await rm(p.pidfile, { force: true })
      // daemonize yes: the command returns once the server has forked and written its pidfile.
      const r = await exec(bin, [p.conf], { allowFail: true, timeoutMs: 15_000 })
      if (r.code !== 0) throw new HafwError(`redis-server ${p.conf}: exit ${r.code}\n${(r.stderr || r.stdout).trim() || (await tail(p.log))}`)
      started = true
    }
    const t0 = Date.now()
    for (const deadline = t0 + 60_000; ; ) {
      const state = await pingSocket(p.socket)
      pid = await serverPid(p)
      if (state === 'up' && pid) return { ...p, pid, started }
      // No server process a second after the start: it exited (bad config, AOF damage...).
      if (!pid && Date.now() > t0 + 1000) throw new HafwError(`redis-server did not start; last lines of ${p.log}:\n${await tail(p.log)}`)
      if (Date.now() > deadline) throw new HafwError(`redis-server (PID ${pid}) does not answer on ${p.socket} after 60 s; see ${p.log}`)
      await sleep(state === 'loading' ? 200 : 50)
    }
  })
}

function embeddedConf(p: EmbeddedRedis): string {
  return [
    '# Written by hafw for its private queue server; rewritten on every start.',
    'daemonize yes',
    `pidfile ${p.pidfile}`,
    'port 0',
    `unixsocket ${p.socket}`,
    'unixsocketperm 700',
    `dir ${p.dir}`,
    `logfile ${p.log}`,
    'appendonly yes',
    'appendfsync everysec',
    'save ""',
    // bullmq requires that Redis never evicts keys.
    'maxmemory-policy noeviction',
    '',
  ].join('\n')
}

/** Stop the private redis-server by the PID in its pidfile (SIGTERM: Redis flushes the AOF, then exits). */
export async function stopEmbeddedRedis(dir?: string, timeoutMs = 15_000): Promise<{ stopped: boolean; pid?: number; dir: string }> {
  const p = embeddedPaths(dir)
  const pid = await serverPid(p)
  if (!pid) return { stopped: false, dir: p.dir }
  process.kill(pid, 'SIGTERM')
  for (const deadline = Date.now() + timeoutMs; alive(pid); await sleep(50)) {
    if (Date.now() > deadline) throw new HafwError(`redis-server PID ${pid} did not exit within ${timeoutMs / 1000} s of SIGTERM; see ${p.log}`)
  }
  return { stopped: true, pid, dir: p.dir }
}

export async function embeddedRedisStatus(dir?: string): Promise<{ running: boolean; pid?: number; socket: string; answers: boolean }> {
  const p = embeddedPaths(dir)
  const pid = await serverPid(p)
  return { running: pid !== undefined, ...(pid ? { pid } : {}), socket: p.socket, answers: (await pingSocket(p.socket)) === 'up' }
}
