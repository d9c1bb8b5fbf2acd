import { Flags } from '@oclif/core'
import { JobQueue, runWorkerUntilSignal } from '@hafw/queue'
import { BaseCommand } from '../lib/base.js'
import '../lib/operations.js'

export default class WorkerCmd extends BaseCommand {
  static override summary = 'Run queued jobs (apply, verify, drill, plan...) until SIGTERM'
  static override description = `Runs anywhere that reaches the queue's Redis (REDIS_URL, REDIS_SENTINELS, or the embedded server of this machine). Start several, on one or many machines: one pair is never touched by two jobs at once.
On SIGTERM or SIGINT the worker stops taking jobs and gives running ones --grace seconds to finish; then (or on a second signal) it aborts them and they go back to the queue for another worker.`
  static override examples = ['<%= config.bin %> worker', '<%= config.bin %> worker --concurrency 4 --grace 120']
  static override enableJsonFlag = false
  static override flags = {
    concurrency: Flags.integer({ char: 'c', description: 'jobs run at once', default: 1, min: 1, max: 256 }),
    grace: Flags.integer({ description: 'seconds running jobs get to finish after SIGTERM', default: 30, min: 0 }),
  }

  async run(): Promise<void> {
    const { flags } = await this.parse(WorkerCmd)
    const q = await JobQueue.open()
    try {
      await runWorkerUntilSignal(q, { concurrency: flags.concurrency, graceMs: flags.grace * 1000, log: this.progress(flags.verbose) })
    } finally {
      await q.close()
    }
  }
}
