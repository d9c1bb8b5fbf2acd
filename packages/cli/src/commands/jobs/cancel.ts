import { Args, Flags } from '@oclif/core'
import { BaseCommand } from '../../lib/base.js'
import { withQueue } from '../../lib/queue.js'

export default class JobsCancel extends BaseCommand {
  static override summary = 'Cancel a job: a running one is aborted where it runs, a queued one fails when taken (or is removed)'
  static override description = 'A rollout is cancelled with its running pairs; pairs not started yet never start. Exit 2 if the job has already finished.'
  static override examples = ['<%= config.bin %> jobs cancel 42', '<%= config.bin %> jobs cancel r7 --reason "wrong inventory"']
  static override args = { id: Args.string({ description: 'job id', required: true }) }
  static override flags = {
    reason: Flags.string({ description: 'recorded as the job error', default: 'cancelled by operator' }),
    remove: Flags.boolean({ description: 'delete a job that has not started instead of failing it when taken' }),
  }

  async run(): Promise<{ jobId: string; state: string; children: string[]; removed: boolean }> {
    const { args, flags } = await this.parse(JobsCancel)
    const { r, workers } = await withQueue(async (q) => ({ r: await q.cancel(args.id, flags.reason, { remove: flags.remove }), workers: await q.hasWorkers() }))
    if (!this.jsonEnabled()) {
      if (r.removed) this.log(`job ${r.jobId} (${r.state}) removed`)
      else if (r.state === 'active') this.log(`job ${r.jobId} aborted where it runs${r.children.length ? `, with ${r.children.length} running pair job(s): ${r.children.join(', ')}` : ''}`)
      else this.log(`job ${r.jobId} (${r.state}) will fail as cancelled when it is taken${workers ? '' : ' (no worker is listening now; --remove deletes it instead)'}`)
    }
    return r
  }
}
