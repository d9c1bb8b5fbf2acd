import { Args } from '@oclif/core'
import { BaseCommand } from '../../lib/base.js'
import { withQueue } from '../../lib/queue.js'

export default class JobsRetry extends BaseCommand {
  static override summary = 'Run a failed job again, with its attempts counted afresh'
  static override examples = ['<%= config.bin %> jobs retry 42']
  static override args = { id: Args.string({ description: 'job id', required: true }) }

  async run(): Promise<{ jobId: string }> {
    const { args } = await this.parse(JobsRetry)
    const r = await withQueue((q) => q.retry(args.id))
    if (!this.jsonEnabled()) this.log(`job ${r.jobId} queued again`)
    return r
  }
}
