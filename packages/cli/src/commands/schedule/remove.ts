import { Args } from '@oclif/core'
import { BaseCommand } from '../../lib/base.js'
import { withQueue } from '../../lib/queue.js'

export default class ScheduleRemove extends BaseCommand {
  static override summary = 'Remove a schedule (jobs it already created stay in the history)'
  static override examples = ['<%= config.bin %> schedule remove verify-edge1']
  static override args = { name: Args.string({ description: 'schedule name', required: true }) }

  async run(): Promise<{ removed: string }> {
    const { args } = await this.parse(ScheduleRemove)
    await withQueue((q) => q.removeSchedule(args.name))
    if (!this.jsonEnabled()) this.log(`schedule ${args.name} removed`)
    return { removed: args.name }
  }
}
