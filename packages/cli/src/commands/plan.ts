import { Args, Flags } from '@oclif/core'
import { formatPlan, planInventory, type PlanResult } from '@hafw/plan'
import { BaseCommand } from '../lib/base.js'
import { loadModelForCli, overlayFlag, acceptNewFlag } from '../lib/model.js'
import { interruptSignal } from '../lib/queue.js'

export default class Plan extends BaseCommand {
  static override summary = 'Show what `hafw apply` would change on each node: diffs, service actions, drift (no side effects)'
  static override description = `Covers every pair's nodes and every \`hosts:\` entry. Reads every managed file, the units' state and the live ruleset, routes and policy rules from each node (one SSH connection and one command per node) and prints a unified diff per file, the reloads/restarts apply would run, units to enable or start, and drift: live state that differs from what the last apply recorded on the node (drift in the ruleset or routes is repaired by the next apply).

EXIT STATUS
  0  no changes: apply would do nothing
  2  changes (or drift to repair): apply would change something
  1  error: a node could not be read (the plan is incomplete), or bad input`
  static override examples = ['<%= config.bin %> plan inventory/lab.yaml', '<%= config.bin %> plan inventory/lab.yaml --pair edge1 --json']
  static override args = { file: Args.string({ description: 'inventory file', required: true }) }
  static override flags = {
    pair: Flags.string({ char: 'p', description: 'only this pair (or `hosts:` entry)', helpValue: 'PAIR' }),
    'accept-new': acceptNewFlag,
    overlay: overlayFlag,
  }

  async run(): Promise<PlanResult> {
    const { args, flags } = await this.parse(Plan)
    const model = await loadModelForCli(args.file, { overlay: flags.overlay })
    const r = await planInventory({ model, pair: flags.pair, acceptNew: flags['accept-new'] }, this.progress(flags.verbose), interruptSignal())
    if (!this.jsonEnabled()) {
      if (r.nodes.length) this.log(formatPlan(r.nodes))
      for (const e of r.errors) process.stderr.write(`error: ${e.node}${e.pair !== e.node ? ` (pair ${e.pair})` : ''}: ${e.error}\n`)
    }
    const code = r.errors.length ? 1 : r.summary.changes ? 2 : 0
    if (code !== 0) {
      if (this.jsonEnabled()) this.logJson(r)
      this.exit(code)
    }
    return r
  }
}
