import { Args } from '@oclif/core'
import { stringify } from 'yaml'
import type { JobDetail } from '@hafw/queue'
import { BaseCommand } from '../../lib/base.js'
import { withQueue } from '../../lib/queue.js'

export default class JobsShow extends BaseCommand {
  static override summary = 'Show one job: input, state, attempts, result or error; a rollout: every pair'
  static override examples = ['<%= config.bin %> jobs show 42', '<%= config.bin %> jobs show r7 --json']
  static override args = { id: Args.string({ description: 'job id', required: true }) }

  async run(): Promise<JobDetail> {
    const { args } = await this.parse(JobsShow)
    const d = await withQueue((q) => q.show(args.id))
    if (!this.jsonEnabled()) this.log(stringify(d).trimEnd())
    return d
  }
}
