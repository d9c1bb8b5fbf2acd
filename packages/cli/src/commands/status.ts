import { Args, Flags } from '@oclif/core'
import { StatusWatcher, formatStatus, type PairStatus } from '@hafw/verify'
import { BaseCommand } from '../lib/base.js'
import { loadModelForCli, overlayFlag, acceptNewFlag } from '../lib/model.js'

export default class Status extends BaseCommand {
  static override summary = 'Each pair at a glance: roles per VRRP instance, VIP owner, sync link, cache sizes'
  static override description = `One line per pair from one probe of each node (no table dumps; \`hafw verify\` compares entry by entry): each node's role per instance (MASTER where it holds the instance's VIPs), who holds the VIPs (SPLIT: both), the sync link per node (ok and the sync packets received, SILENT, DOWN, STOPPED), the active's internal cache against the standby's external cache (equal when the standby holds everything the active syncs), and problems.
--watch refreshes every 2 s until Ctrl-C, over the same SSH sessions (--json: one JSON array per line).

EXIT STATUS
  0  every pair healthy
  1  a pair has a problem, or bad input`
  static override examples = ['<%= config.bin %> status inventory/lab.yaml', '<%= config.bin %> status inventory/lab.yaml --pair edge1 --watch']
  static override args = { file: Args.string({ description: 'inventory file', required: true }) }
  static override flags = {
    pair: Flags.string({ char: 'p', description: 'only this pair', helpValue: 'PAIR' }),
    watch: Flags.boolean({ char: 'w', description: 'refresh every 2 s until interrupted' }),
    'accept-new': acceptNewFlag,
    overlay: overlayFlag,
  }

  async run(): Promise<PairStatus[]> {
    const { args, flags } = await this.parse(Status)
    const model = await loadModelForCli(args.file, { overlay: flags.overlay })
    const ac = new AbortController()
    const stop = () => ac.abort(new Error('interrupted'))
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
    const w = new StatusWatcher(model, { ...(flags.pair ? { pairs: [flags.pair] } : {}), acceptNew: flags['accept-new'] }, this.progress(flags.verbose), ac.signal)
    let rows: PairStatus[] = []
    try {
      for (;;) {
        const t0 = Date.now()
        rows = await w.refresh()
        if (!flags.watch) break
        if (this.jsonEnabled()) process.stdout.write(JSON.stringify(rows) + '\n')
        else {
          const clear = process.stdout.isTTY ? '\x1b[H\x1b[2J' : ''
          this.log(`${clear}${new Date().toISOString()}  (every 2 s, Ctrl-C to stop)\n${formatStatus(rows)}\n`)
        }
        await new Promise<void>((res) => {
          const t = setTimeout(res, Math.max(0, 2000 - (Date.now() - t0)))
          ac.signal.addEventListener('abort', () => (clearTimeout(t), res()), { once: true })
        })
        if (ac.signal.aborted) break
      }
    } catch (e) {
      if (!ac.signal.aborted) throw e
    } finally {
      await w.close()
    }
    if (flags.watch) this.exit(0) // every refresh was printed already
    const ok = rows.every((r) => r.ok)
    if (this.jsonEnabled()) {
      if (!ok) {
        this.logJson(rows)
        this.exit(1)
      }
      return rows
    }
    this.log(formatStatus(rows))
    if (!ok) this.exit(1)
    return rows
  }
}
