import type { ScheduleInfo } from '@hafw/queue'
import { BaseCommand } from '../../lib/base.js'
import { table, withQueue } from '../../lib/queue.js'

export default class ScheduleList extends BaseCommand {
  static override summary = 'List schedules with their next run'
  static override examples = ['<%= config.bin %> schedule list', '<%= config.bin %> schedule list --json']

  async run(): Promise<{ schedules: ScheduleInfo[] }> {
    await this.parse(ScheduleList)
    const schedules = await withQueue((q) => q.schedules())
    if (!this.jsonEnabled()) {
      if (!schedules.length) process.stderr.write('no schedules\n')
      else this.log(table(['NAME', 'OP', 'PAIRS', 'CRON', 'TZ', 'NEXT', 'RUNS'], schedules.map((s) => [s.id, s.op, s.pairs.join(','), s.cron ?? '-', s.tz ?? '-', s.next ?? '-', String(s.iterations ?? 0)])))
    }
    return { schedules }
  }
}
