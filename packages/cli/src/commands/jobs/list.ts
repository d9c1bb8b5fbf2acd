import { Flags } from '@oclif/core'
import type { JobState, JobSummary } from '@hafw/queue'
import { BaseCommand } from '../../lib/base.js'
import { ago, duration, table, withQueue } from '../../lib/queue.js'

export default class JobsList extends BaseCommand {
  static override summary = 'List recent jobs, newest first'
  static override examples = ['<%= config.bin %> jobs list', '<%= config.bin %> jobs list --state failed --pair edge1 --json']
  static override flags = {
    state: Flags.string({ options: ['active', 'waiting', 'prioritized', 'delayed', 'waiting-children', 'completed', 'failed'], description: 'only jobs in this state' }),
    op: Flags.string({ description: 'only this operation (e.g. apply)' }),
    pair: Flags.string({ description: 'only jobs on this pair' }),
    limit: Flags.integer({ description: 'at most this many', default: 50, min: 1 }),
  }

  async run(): Promise<{ jobs: JobSummary[] }> {
    const { flags } = await this.parse(JobsList)
    const jobs = await withQueue((q) => q.list({ ...(flags.state ? { state: flags.state as JobState } : {}), ...(flags.op ? { op: flags.op } : {}), ...(flags.pair ? { pair: flags.pair } : {}), limit: flags.limit }))
    if (!this.jsonEnabled()) {
      if (!jobs.length) process.stderr.write('no jobs\n')
      else
        this.log(
          table(
            ['ID', 'OP', 'STATE', 'PAIRS', 'TRIES', 'CREATED', 'TOOK', 'ERROR'],
            jobs.map((j) => [
              j.id,
              j.op,
              j.state + (j.cancelRequested ? ' (cancel requested)' : ''),
              j.pairs.length > 3 ? `${j.pairs.slice(0, 2).join(',')},+${j.pairs.length - 2}` : j.pairs.join(',') || '-',
              `${j.attemptsMade}/${j.attempts}`,
              ago(j.createdAt),
              duration(j.durationMs),
              j.error ?? '',
            ]),
          ),
        )
    }
    return { jobs }
  }
}
