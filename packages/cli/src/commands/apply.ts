import { Args, Flags } from '@oclif/core'
import { HafwError } from '@hafw/core'
import { applyInventory, DEFAULT_CONFIRM_S, formatSummary, type ApplySummary } from '@hafw/apply'
import { BaseCommand } from '../lib/base.js'
import { loadModelForCli, overlayFlag, acceptNewFlag } from '../lib/model.js'
import { interruptSignal } from '../lib/queue.js'
import '../lib/operations.js'

export default class Apply extends BaseCommand {
  static override summary = 'Roll the inventory out to its pairs: standby first, health gate, then the active node; on-host auto-rollback'
  static override description = `Per pair (one job each on the queue; without a listening \`hafw worker\` this process runs them): read both nodes and plan; upload and check every file with the node's own tools (keepalived -t, iptables-restore --test / nft -c, sh -n) before anything changes; then node by node, the standby (the node not holding the VIPs) first: keep the previous generation under /var/lib/hafw/generations, arm a transient systemd timer that restores it unless confirmed within --confirm-timeout, rename the files into place, reload/restart in order, health gate (units active, exactly one holder of each VRRP instance's VIPs, conntrackd sync messages flowing, a NEW SSH connection works), confirm. A failed node rolls back (and its pair's other node with it).
\`hosts:\` entries (single policy-routing hosts) go the same way as a pair of one node, after the pairs; their gate: units active, each fwmark rule in \`ip rule\`, a new SSH connection.
Applying an unchanged inventory changes nothing and reloads nothing.
Pairs: --canary K pairs first, then --parallel N at once; the first failure stops new pairs from starting.
Without a terminal, --yes is required (CI).

EXIT STATUS
  0  every pair applied or unchanged
  1  a pair failed (rolled back), or bad input`
  static override examples = [
    '<%= config.bin %> apply inventory/lab.yaml --yes',
    '<%= config.bin %> apply site.yaml --canary 1 --parallel 8 --handover --yes',
    '<%= config.bin %> apply site.yaml --pair edge1 --confirm-timeout 120',
  ]
  static override args = { file: Args.string({ description: 'inventory file', required: true }) }
  static override flags = {
    pair: Flags.string({ char: 'p', description: 'only this pair (or `hosts:` entry)', helpValue: 'PAIR' }),
    parallel: Flags.integer({ description: 'pairs rolled out at once', default: 1, min: 1 }),
    canary: Flags.integer({ description: 'pairs that must succeed before the others start', default: 0, min: 0 }),
    handover: Flags.boolean({ description: 'fail over to the updated standby before the active node is touched (never reload the node carrying traffic)' }),
    'confirm-timeout': Flags.integer({ description: 'seconds a node waits for confirmation before it rolls itself back', default: DEFAULT_CONFIRM_S, min: 15 }),
    'early-rollback': Flags.boolean({ description: 'when the health gate fails, start the rollback at once over the existing connection (--no-early-rollback: leave it to the node\'s timer)', default: true, allowNo: true }),
    'accept-new': acceptNewFlag,
    yes: Flags.boolean({ char: 'y', description: 'do not ask; required without a terminal' }),
    overlay: overlayFlag,
  }

  async run(): Promise<ApplySummary> {
    const { args, flags } = await this.parse(Apply)
    const model = await loadModelForCli(args.file, { overlay: flags.overlay })
    if (!flags.yes) {
      if (!process.stdin.isTTY) throw new HafwError('refusing to apply without confirmation: no terminal to ask on; pass --yes (run `hafw plan` first to see the changes)', { exitCode: 1 })
      const { createInterface } = await import('node:readline/promises')
      const rl = createInterface({ input: process.stdin, output: process.stderr })
      const pairs = flags.pair ? [flags.pair] : [...model.pairs.map((p) => p.name), ...model.hosts.map((h) => h.name)]
      const a = await rl.question(`apply ${args.file} to ${pairs.length} pair(s)/host(s) (${pairs.join(', ')})? [y/N] `)
      rl.close()
      if (!/^y(es)?$/i.test(a.trim())) throw new HafwError('not applied', { exitCode: 1 })
    }
    const s = await applyInventory(
      model,
      { pair: flags.pair, parallel: flags.parallel, canary: flags.canary, handover: flags.handover, confirmTimeoutS: flags['confirm-timeout'], earlyRollback: flags['early-rollback'], acceptNew: flags['accept-new'] },
      this.progress(flags.verbose),
      interruptSignal(),
    )
    return this.finish(s, formatSummary(s))
  }
}
