import { Args, Flags } from '@oclif/core'
import type { JobEvent } from '@hafw/queue'
import { BaseCommand } from '../../lib/base.js'
import { withQueue } from '../../lib/queue.js'

export default class JobsLogs extends BaseCommand {
  static override summary = "Print a job's progress events (a rollout: with its pairs' events)"
  static override examples = ['<%= config.bin %> jobs logs 42', '<%= config.bin %> jobs logs r7 --follow']
  static override args = { id: Args.string({ description: 'job id', required: true }) }
  static override flags = { follow: Flags.boolean({ char: 'f', description: 'keep printing until the job has finished' }) }

  async run(): Promise<{ events: JobEvent[] }> {
    const { args, flags } = await this.parse(JobsLogs)
    const json = this.jsonEnabled()
    const events = await withQueue((q) => q.logs(args.id, flags.follow, (line) => (json ? undefined : this.log(line))))
    return { events }
  }
}
