import { Args, Flags } from '@oclif/core'
import { applyInventory, DEFAULT_CONFIRM_S, formatSummary, type ApplySummary } from '@hafw/apply'
import { BaseCommand } from '../lib/base.js'
import { loadModelForCli, overlayFlag } from '../lib/model.js'
import { interruptSignal } from '../lib/queue.js'
import '../lib/operations.js'

export default class Rollback extends BaseCommand {
  static override summary = "Put a pair back on a generation its nodes keep (default: each node's previous one)"
  static override description = `Each node keeps its last 5 generations under /var/lib/hafw/generations. Rolling back applies the files of the chosen generation with every safeguard of \`hafw apply\` (standby first, on-host rollback timer, health gate, confirm) as a new generation.

EXIT STATUS
  0  rolled back (or already there)
  1  failed, or the generation is not kept on a node`
  static override examples = ['<%= config.bin %> rollback inventory/lab.yaml --pair edge1', '<%= config.bin %> rollback inventory/lab.yaml --pair edge1 --to 3']
  static override args = { file: Args.string({ description: 'inventory file', required: true }) }
  static override flags = {
    pair: Flags.string({ char: 'p', description: 'the pair (or `hosts:` entry)', helpValue: 'PAIR', required: true }),
    to: Flags.integer({ description: 'generation to go back to (default: the one before the current, per node)', min: 0 }),
    'confirm-timeout': Flags.integer({ description: 'seconds a node waits for confirmation before it undoes the rollback', default: DEFAULT_CONFIRM_S, min: 15 }),
    overlay: overlayFlag,
  }

  async run(): Promise<ApplySummary> {
    const { args, flags } = await this.parse(Rollback)
    const model = await loadModelForCli(args.file, { overlay: flags.overlay })
    const s = await applyInventory(
      model,
      { pair: flags.pair, confirmTimeoutS: flags['confirm-timeout'], rollback: flags.to === undefined ? {} : { to: flags.to } },
      this.progress(flags.verbose),
      interruptSignal(),
    )
    return this.finish(s, formatSummary(s))
  }
}
