import { Args, Flags } from '@oclif/core'
import { spawn } from 'node:child_process'
import { HafwError } from '@hafw/core'
import { findLabHost, readOverlay, sshArgv } from '@hafw/lab'
import { BaseCommand } from '../../lib/base.js'

export default class LabSsh extends BaseCommand {
  static override summary = 'Run a command on a lab node over SSH through the lab overlay (exit code passed through)'
  static override examples = ['<%= config.bin %> lab ssh fw1a -- ip -br addr', '<%= config.bin %> lab ssh fw1a', '<%= config.bin %> lab ssh --site lab lb1a -- systemctl is-active keepalived']
  static override enableJsonFlag = false
  static override strict = false
  static override args = { node: Args.string({ description: 'node or host name', required: true }) }
  static override flags = { site: Flags.string({ description: 'the site, when several labs have a node of this name' }) }

  async run(): Promise<void> {
    const { args, flags, argv } = await this.parse(LabSsh)
    const command = (argv as string[]).slice(1)
    const site = await findLabHost(args.node, flags.site)
    const entry = (await readOverlay(site))?.nodes[args.node]
    if (!entry) throw new HafwError(`${args.node} is not reachable over SSH in the lab of site ${site} (a probe, or the lab is still starting)`)
    const code = await new Promise<number>((resolve, reject) => {
      const child = spawn('ssh', sshArgv(entry, command), { stdio: 'inherit' })
      child.on('error', (e) => reject(new HafwError(`ssh: ${e.message}`)))
      child.on('exit', (c, sig) => resolve(c ?? (sig ? 128 + 15 : 255)))
    })
    if (code !== 0) this.exit(code)
  }
}
