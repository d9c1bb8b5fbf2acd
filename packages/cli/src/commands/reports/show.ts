import { Args, Flags } from '@oclif/core'
import { writeFile } from 'node:fs/promises'
import { HafwError } from '@hafw/core'
import type { DrillResult } from '@hafw/drill'
import { loadReport, renderHtml, renderTable } from '@hafw/report'
import { BaseCommand } from '../../lib/base.js'

export default class ReportsShow extends BaseCommand {
  static override summary = 'Show one past drill as a table; --html writes its self-contained HTML report'
  static override examples = [
    '<%= config.bin %> reports show 20250603T020000Z-edge1-graceful',
    '<%= config.bin %> reports show 20250603T02 --html drill.html',
    '<%= config.bin %> reports show 20250603T020000Z-edge1-graceful --json | jq .failover.timeline',
  ]
  static override args = { id: Args.string({ description: 'report id (or a prefix naming exactly one)', required: true }) }
  static override flags = {
    html: Flags.string({ description: 'write the HTML report to this file' }),
  }

  async run(): Promise<DrillResult> {
    const { args, flags } = await this.parse(ReportsShow)
    const result = await loadReport(args.id)
    if (flags.html) {
      try {
        await writeFile(flags.html, renderHtml(result))
      } catch (e) {
        throw new HafwError(`${flags.html}: ${(e as Error).message}`, { cause: e })
      }
      process.stderr.write(`wrote ${flags.html}\n`)
    }
    if (!this.jsonEnabled()) this.log(renderTable(result, { color: !!process.stdout.isTTY && !process.env.NO_COLOR }).trimEnd())
    return result
  }
}
