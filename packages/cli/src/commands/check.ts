import { Args, Flags } from '@oclif/core'
import { loadInventory } from '@hafw/inventory'
import { checkInventory, formatCheck, type CheckResult } from '@hafw/check'
import { BaseCommand } from '../lib/base.js'

export default class Check extends BaseCommand {
  static override summary = 'Render, then prove every file with the real tool (keepalived -t, iptables-restore --test / nft -c, conntrackd, sh -n...)'
  static override description = `Each node gets a throwaway network namespace with its interface names and addresses: the ruleset and routes are loaded there, conntrackd is started there (lock file and socket in a temporary directory) and stopped, the state script runs its three transitions against it. Nothing on this host changes. Needs root (network namespaces).
One line per file; exit 1 when any file fails, with the tool's own message below it.`
  static override examples = ['sudo <%= config.bin %> check inventory/lab.yaml', 'sudo <%= config.bin %> check inventory/reference.yaml --pair edge1 --json']
  static override args = { file: Args.string({ description: 'inventory file', required: true }) }
  static override flags = {
    pair: Flags.string({ char: 'p', description: 'only this pair', helpValue: 'PAIR' }),
    node: Flags.string({ char: 'n', description: 'only this node (or host)', helpValue: 'NODE' }),
    profile: Flags.string({ description: "target layout instead of the inventory's profile", options: ['debian', 'rhel'] }),
  }

  async run(): Promise<CheckResult> {
    const { args, flags } = await this.parse(Check)
    const model = await loadInventory(args.file)
    const ac = new AbortController()
    const stop = () => ac.abort(new Error('interrupted'))
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
    let result: CheckResult
    try {
      result = await checkInventory({ model, pair: flags.pair, node: flags.node, profile: flags.profile as 'debian' | 'rhel' | undefined }, this.progress(flags.verbose), ac.signal)
    } finally {
      process.off('SIGINT', stop)
      process.off('SIGTERM', stop)
    }
    if (!this.jsonEnabled()) this.log(formatCheck(result))
    if (!result.ok) {
      if (this.jsonEnabled()) this.logJson(result)
      this.exit(1)
    }
    return result
  }
}
