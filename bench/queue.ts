/**
 * Queue benchmark: 1,000 no-op jobs through two worker processes on a private redis-server
 * (the embedded configuration: unix socket, AOF everysec). Each job locks its own pair, so the
 * pair-lock path is included. Prints jobs/s and submit-to-start latency (bullmq's job.timestamp
 * at submit -> processedOn when a worker took it).
 *
 * Three ways to submit: bulk (one addBulk: raw throughput), one by one as fast as possible (as
 * CLIs do), and paced at --rate jobs/s (below capacity: latency without a backlog).
 *
 *   npx tsx bench/queue.ts [--jobs 1000] [--concurrency 1,8] [--rate 200]
 */
import { parseArgs } from 'node:util'
import type { Job } from 'bullmq'
import type { JobData } from '../packages/queue/src/index.js'
import { noop } from '../test/fixtures/queue-ops.js'
import { openQueue, spawnWorker, startRedis, until } from '../test/fixtures/queue-harness.js'

const { values } = parseArgs({ options: { jobs: { type: 'string', default: '1000' }, concurrency: { type: 'string', default: '1,8' }, rate: { type: 'string', default: '200' } } })
const N = Number(values.jobs)
const pct = (xs: number[], p: number) => xs[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)]!

const redis = await startRedis()
try {
  for (const concurrency of values.concurrency!.split(',').map(Number)) {
    for (const mode of ['bulk', 'one by one', `paced ${values.rate}/s`]) {
      const q = await openQueue(redis, {})
      const workers = await Promise.all([spawnWorker(q, redis, { concurrency }), spawnWorker(q, redis, { concurrency })])
      const t0 = Date.now()
      let ids: string[]
      if (mode !== 'bulk') {
        // As CLIs submit: one add per job (input checked, pairs computed), not waiting for results;
        // paced below the workers' capacity, latency is the pickup time, not the backlog.
        const rate = mode === 'one by one' ? Infinity : Number(values.rate)
        ids = []
        for (let i = 0; i < N; i++) {
          const due = t0 + (i * 1000) / rate
          if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()))
          ids.push(await q.submit(noop, { pair: `p${i}` }))
        }
      } else {
        const jobs = await q.queue.addBulk(Array.from({ length: N }, (_, i) => ({ name: noop.name, data: { input: { pair: `p${i}` }, pairs: [`p${i}`], by: 'bench' } satisfies JobData, opts: { attempts: 1 } })))
        ids = jobs.map((j) => j.id!)
      }
      const submitted = Date.now()
      await until(async () => (await q.queue.getJobCounts('completed')).completed === N, 300_000, 'all jobs')
      const done = Date.now()
      const jobs = (await Promise.all(ids.map((id) => q.queue.getJob(id)))) as Job[]
      const lat = jobs.map((j) => j.processedOn! - j.timestamp).sort((a, b) => a - b)
      const last = Math.max(...jobs.map((j) => j.finishedOn!))
      console.log(
        `${N} no-op jobs, 2 workers x concurrency ${concurrency}, submitted ${mode}: ` +
          `submit ${Math.round((N * 1000) / (submitted - t0))} jobs/s, end-to-end ${Math.round((N * 1000) / (last - t0))} jobs/s (${((done - t0) / 1000).toFixed(2)} s); ` +
          `submit-to-start p50 ${pct(lat, 50)} ms, p99 ${pct(lat, 99)} ms, max ${lat[lat.length - 1]} ms`,
      )
      for (const w of workers) w.kill('SIGTERM')
      await Promise.all(workers.map((w) => w.exited))
      await q.close()
    }
  }
} finally {
  await redis.stop()
}
