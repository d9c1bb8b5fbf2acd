import { Args } from '@oclif/core'
import { HafwError } from '@hafw/core'
import { loadInventory } from '@hafw/inventory'
import { formatLabStatus, labStatus, labUp, type LabUpResult } from '@hafw/lab'
import { BaseCommand } from '../../lib/base.js'

export default class LabUp extends BaseCommand {
  static override summary = 'Boot every node of an inventory as a real Debian host on this machine'
  static override description = [
    'Each node and host becomes a systemd-nspawn container (systemd, sshd, keepalived, conntrackd,',
    'iptables, nftables) in its own network namespace, with the interfaces and addresses the',
    'inventory declares; segments are bridges, plus probe clients and servers with echo',
    'responders. Nodes are reached over 198.18.0.0/15 through an SSH overlay that later commands',
    'apply automatically. Needs root. The root filesystem is built once and cached.',
  ].join('\n')
  static override examples = ['<%= config.bin %> lab up inventory/lab.yaml', '<%= config.bin %> lab ssh fw1a -- ip -br addr']
  static override args = { file: Args.string({ description: 'inventory file', required: true }) }

  async run(): Promise<LabUpResult> {
    const { args, flags } = await this.parse(LabUp)
    const model = await loadInventory(args.file)
    // Ctrl-C removes whatever was made so far.
    const ac = new AbortController()
    const stop = () => ac.abort(new HafwError('interrupted; the partial lab was removed', { exitCode: 130 }))
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
    try {
      const r = await labUp(model, this.progress(flags.verbose), ac.signal)
      if (!this.jsonEnabled()) {
        this.log(formatLabStatus(await labStatus(r.site)))
        this.log(`\nlab up in ${(r.ms / 1000).toFixed(1)} s${r.rootfs.built ? ` (root filesystem built in ${(r.rootfs.ms / 1000).toFixed(1)} s)` : ''}; try: ${this.config.bin} lab ssh ${r.hosts[0]?.name ?? 'NODE'} -- ip -br addr`)
      }
      return r
    } finally {
      process.off('SIGINT', stop)
      process.off('SIGTERM', stop)
    }
  }
}
