import { Flags } from '@oclif/core'
import { listReports, type ReportSummary } from '@hafw/report'
import { BaseCommand } from '../../lib/base.js'
import { table } from '../../lib/queue.js'

export default class ReportsList extends BaseCommand {
  static override summary = 'List past failover drills, newest first'
  static override description = 'Reports live in $HAFW_STATE_DIR/reports (one JSON result and one HTML report per drill).'
  static override examples = ['<%= config.bin %> reports list', '<%= config.bin %> reports list --pair edge1 --json']
  static override flags = {
    pair: Flags.string({ description: 'only drills of this pair' }),
    limit: Flags.integer({ description: 'at most this many', default: 20, min: 1 }),
  }

  async run(): Promise<{ reports: ReportSummary[] }> {
    const { flags } = await this.parse(ReportsList)
    const reports = await listReports({ ...(flags.pair ? { pair: flags.pair } : {}), limit: flags.limit })
    if (!this.jsonEnabled()) {
      if (!reports.length) process.stderr.write(`no drill reports${flags.pair ? ` for pair ${flags.pair}` : ''}\n`)
      else
        this.log(
          table(
            ['ID', 'TIME', 'PAIR', 'MODE', 'VERDICT', 'GAP', 'RESET'],
            reports.map((r) => [
              r.id,
              r.started_at,
              r.pair,
              r.mode + (r.failback ? '+failback' : ''),
              r.verdict.toUpperCase(),
              r.gap_ms === null ? '-' : `${Math.round(r.gap_ms)}ms`,
              `${r.flows.reset}/${r.flows.total}`,
            ]),
          ),
        )
    }
    return { reports }
  }
}
