import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { existsSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import { join } from 'node:path'
import { spawn, type ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { ensureEmbeddedRedis, embeddedRedisStatus, EventWriter, JobQueue, pingSocket, readEvents, resolveRedis, startWorker, stopEmbeddedRedis } from '@hafw/queue'
import { Redis } from 'ioredis'
import { sleeper } from '../fixtures/queue-ops.js'
import { openQueue, spawnWorker, startRedis, until, type PrivateRedis, type WorkerProcess } from '../fixtures/queue-harness.js'

let redis: PrivateRedis
const queues: JobQueue[] = []
const procs: WorkerProcess[] = []
const redisDir = () => join(redis.dir, 'redis')

beforeAll(async () => {
  redis = await startRedis()
})
afterAll(async () => {
  for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.kill('SIGKILL')
  await Promise.all(procs.map((p) => p.exited))
  for (const q of queues) await q.close()
  await redis?.stop()
})

/** TCP sockets a process listens on, from /proc (no ss/netstat needed). */
function tcpListeners(pid: number): number {
  const listening = new Set<string>()
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!existsSync(f)) continue
    for (const l of readFileSync(f, 'utf8').trim().split('\n').slice(1)) {
      const c = l.trim().split(/\s+/)
      if (c[3] === '0A') listening.add(c[9]!) // state LISTEN, by socket inode
    }
  }
  const inodes = readdirSync(`/proc/${pid}/fd`).map((fd) => {
    try {
      return /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1] ?? ''
    } catch {
      return ''
    }
  })
  return inodes.filter((i) => listening.has(i)).length
}

describe('embedded redis-server', () => {
  it('is reused while it answers, listens on a private unix socket only, with AOF on', async () => {
    const again = await ensureEmbeddedRedis(redisDir())
    expect(again).toMatchObject({ started: false, pid: redis.pid, socket: redis.socket })
    expect(statSync(redis.socket).mode & 0o777).toBe(0o700)
    expect(statSync(redisDir()).mode & 0o777).toBe(0o700)
    expect(tcpListeners(redis.pid)).toBe(0)
    // (The check itself sees a listening socket when there is one.)
    const srv = createServer().listen(0, '127.0.0.1')
    await new Promise((r) => srv.once('listening', r))
    expect(tcpListeners(process.pid)).toBeGreaterThanOrEqual(1)
    srv.close()
    expect(existsSync(join(redisDir(), 'appendonlydir'))).toBe(true)
    expect(await embeddedRedisStatus(redisDir())).toEqual({ running: true, pid: redis.pid, socket: redis.socket, answers: true })
  })

  it.each(['SIGTERM', 'SIGKILL'] as const)('a Redis restart (%s) loses no queued job; a running worker resumes', async (sig) => {
    const q = await openQueue(redis)
    queues.push(q)
    // A worker connected before the restart must carry on after it; paused meanwhile, so every
    // job below is still queued when Redis goes down.
    const w = await spawnWorker(q, redis, { concurrency: 1 })
    procs.push(w)
    w.kill('SIGSTOP')
    const ids: string[] = []
    for (let i = 0; i < 20; i++) ids.push(await q.submit(sleeper, { ms: 5, pair: `r${i % 4}` }))
    const delayed = await q.queue.add('test.sleep', { input: { ms: 5 }, pairs: [], by: 'test' }, { delay: 1500 })
    await q.addSchedule({ id: 'every-second', op: 'test.sleep', input: { ms: 1 }, cron: '* * * * * *' })
    expect(await Promise.all(ids.map((id) => q.queue.getJobState(id)))).toEqual(ids.map(() => 'waiting'))
    expect(await q.queue.getJobState(delayed.id!)).toBe('delayed')
    // The schedule's first run is delayed to the next whole second, or already waiting when
    // the upsert crossed that second on its way to Redis (bullmq clamps a run time in the past
    // to now): 1 run in a few hundred, more under load. Either way it is queued.
    const counts = await q.queue.getJobCounts('waiting', 'delayed')
    expect(counts.waiting! + counts.delayed!).toBe(22)
    const pid = redis.pid
    if (sig === 'SIGTERM') await stopEmbeddedRedis(redisDir())
    else {
      // The AOF gets every write before Redis replies (appendfsync everysec only delays the fsync).
      process.kill(pid, 'SIGKILL')
      await until(async () => !(await embeddedRedisStatus(redisDir())).running, 5000, 'redis to die')
    }
    expect(await pingSocket(redis.socket)).toBe('down')
    const back = await ensureEmbeddedRedis(redisDir())
    expect(back.started).toBe(true)
    expect(back.pid).not.toBe(pid)
    redis.pid = back.pid
    w.kill('SIGCONT')
    // Everything queued before the restart is still there and gets done.
    await until(async () => {
      const st = await Promise.all([...ids, delayed.id!].map((id) => q.queue.getJobState(id)))
      return st.every((s) => s === 'completed')
    }, 30_000, 'queued jobs to complete after the restart')
    expect((await q.schedules()).map((s) => s.id)).toEqual(['every-second'])
    await q.removeSchedule('every-second')
    w.kill('SIGTERM')
    expect(await w.exited).toBe(0)
  }, 60_000)
})

describe('progress events', () => {
  it('arrive complete and in order, those emitted while a write is under way going together in the next one', async () => {
    const r = new Redis({ path: redis.socket, lazyConnect: true })
    await r.connect()
    try {
      const key = `hafw-test-events-${process.pid}`
      const w = new EventWriter(r, key, 'j1', 60)
      let writes = 0
      const multi = r.multi.bind(r)
      r.multi = ((...a: Parameters<typeof r.multi>) => (writes++, multi(...a))) as typeof r.multi
      for (let i = 0; i < 200; i++) w.progress({ t: i, level: 'info', scope: 's', message: `event ${i}` })
      w.emit('done', 'info', 'finished')
      await w.flush()
      const { events } = await readEvents(r, key, '0-0')
      expect(events.map((e) => e.message)).toEqual([...Array.from({ length: 200 }, (_, i) => `event ${i}`), 'finished'])
      expect(events.at(-1)).toMatchObject({ job: 'j1', kind: 'done' })
      // 201 events emitted at once: one round trip, not 201
      expect(writes).toBe(1)
      // one while a write is under way waits for it, then goes with the others that came meanwhile
      w.progress({ t: 1, level: 'info', scope: '', message: 'a' })
      await new Promise((ok) => setImmediate(ok))
      w.progress({ t: 2, level: 'info', scope: '', message: 'b' })
      w.progress({ t: 3, level: 'info', scope: '', message: 'c' })
      await w.flush()
      expect(writes).toBe(3)
      expect((await readEvents(r, key, '0-0')).events.slice(-3).map((e) => e.message)).toEqual(['a', 'b', 'c'])
      expect(await r.ttl(key)).toBeGreaterThan(0)
      await r.del(key)
    } finally {
      r.disconnect()
    }
  })
})

describe('schedules', () => {
  it('create jobs on their cron, visible in the job list, until removed', async () => {
    const q = await openQueue(redis)
    queues.push(q)
    const s = await q.addSchedule({ id: 'sleep-s1', op: 'test.sleep', input: { ms: 20, pair: 's1' }, cron: '* * * * * *' })
    expect(s).toMatchObject({ id: 'sleep-s1', op: 'test.sleep', cron: '* * * * * *', pairs: ['s1'], input: { ms: 20, pair: 's1' } })
    const w = await startWorker(q)
    try {
      const done = await until(async () => {
        const jobs = await q.list({ op: 'test.sleep', state: 'completed' })
        return jobs.length >= 3 && jobs
      }, 10_000, 'three scheduled runs')
      for (const j of done) expect(j).toMatchObject({ scheduler: 'sleep-s1', pairs: ['s1'] })
      // Scheduled jobs carry the bounded retention of every job.
      const job = await q.getJob(done[0]!.id)
      expect(job.opts.removeOnComplete).toEqual({ count: 5000, age: 30 * 86400 })
      expect(job.opts.removeOnFail).toEqual({ count: 5000, age: 90 * 86400 })
      await q.removeSchedule('sleep-s1')
      expect(await q.schedules()).toEqual([])
      await new Promise((r) => setTimeout(r, 300))
      const n = (await q.list({ op: 'test.sleep' })).length
      await new Promise((r) => setTimeout(r, 2000))
      expect((await q.list({ op: 'test.sleep' })).length).toBe(n)
    } finally {
      await w.close()
    }
  })

  it('reject a bad cron expression and unknown schedules clearly', async () => {
    const q = await openQueue(redis)
    queues.push(q)
    await expect(q.addSchedule({ id: 'bad', op: 'test.sleep', input: { ms: 1 }, cron: '61 * * * *' })).rejects.toThrow(/^--cron "61 \* \* \* \*": /)
    await expect(q.removeSchedule('nope')).rejects.toThrow('no schedule "nope"')
  })
})

describe('REDIS_URL and Sentinel', () => {
  const children: ChildProcess[] = []
  afterAll(async () => {
    for (const c of children) c.kill('SIGTERM')
    await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.on('exit', r)))))
  })
  const freePort = async () => {
    const srv = createServer().listen(0, '127.0.0.1')
    await new Promise((r) => srv.once('listening', r))
    const port = (srv.address() as { port: number }).port
    await new Promise((r) => srv.close(r))
    return port
  }
  /** A redis-server (or sentinel) on loopback TCP, in the foreground, stopped by PID after the tests. */
  const server = async (args: string[], port: number) => {
    const c = spawn('redis-server', args, { stdio: 'ignore' })
    children.push(c)
    await until(async () => {
      return new Promise<boolean>((resolve) => {
        const sock = connect(port, '127.0.0.1')
        sock.on('connect', () => (sock.destroy(), resolve(true)))
        sock.on('error', () => resolve(false))
      })
    }, 10_000, `redis on port ${port}`)
  }

  it('parses the documented forms and rejects bad ones', async () => {
    expect(await resolveRedis({ REDIS_URL: 'rediss://u:p%40ss@cache.example:6380/2' })).toEqual({
      options: { host: 'cache.example', port: 6380, db: 2, username: 'u', password: 'p@ss', tls: { servername: 'cache.example', rejectUnauthorized: true } },
      describe: 'rediss://cache.example:6380/2',
    })
    expect((await resolveRedis({ REDIS_SENTINELS: 'a:26379, [::1]:26380', REDIS_SENTINEL_NAME: 'mymaster', REDIS_PASSWORD: 'x' })).options).toEqual({
      sentinels: [{ host: 'a', port: 26379 }, { host: '::1', port: 26380 }], name: 'mymaster', db: 0, password: 'x',
    })
    await expect(resolveRedis({ REDIS_URL: 'http://x' })).rejects.toThrow('REDIS_URL: unsupported scheme http:')
    await expect(resolveRedis({ REDIS_SENTINELS: 'a:1' })).rejects.toThrow(/REDIS_SENTINEL_NAME/)
    await expect(resolveRedis({ REDIS_SENTINELS: 'a', REDIS_SENTINEL_NAME: 'm' })).rejects.toThrow('REDIS_SENTINELS: expected host:port[,host:port...], found "a"')
  })

  it('runs jobs through redis:// and through a Sentinel (real redis-server processes on loopback)', async () => {
    const port = await freePort()
    await server(['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], port)
    const viaUrl = await JobQueue.open({ target: await resolveRedis({ REDIS_URL: `redis://127.0.0.1:${port}/3` }), prefix: 'u', name: 'url' })
    try {
      const r = await viaUrl.submitAndWait(sleeper, { ms: 20 })
      expect(r.detached === false && r.result.slept).toBeGreaterThanOrEqual(20)
      expect(await viaUrl.redis.exists(`u:url:${r.jobId}`)).toBe(1)
      expect(viaUrl.redis.options.db).toBe(3)
    } finally {
      await viaUrl.close()
    }
    const sport = await freePort()
    const conf = join(redis.dir, 'sentinel.conf')
    writeFileSync(conf, `port ${sport}\nbind 127.0.0.1\nsentinel monitor mymaster 127.0.0.1 ${port} 1\n`)
    await server([conf, '--sentinel'], sport)
    const viaSentinel = await JobQueue.open({ target: await resolveRedis({ REDIS_SENTINELS: `127.0.0.1:${sport}`, REDIS_SENTINEL_NAME: 'mymaster' }), prefix: 's', name: 'sentinel' })
    try {
      const w = await startWorker(viaSentinel)
      const r = await viaSentinel.submitAndWait(sleeper, { ms: 20 })
      await w.close()
      expect(r.detached === false && r.result.slept).toBeGreaterThanOrEqual(20)
      expect(viaSentinel.target.describe).toBe(`sentinel mymaster via 127.0.0.1:${sport}`)
    } finally {
      await viaSentinel.close()
    }
  })
})
