import { Args, Flags } from '@oclif/core'
import { existsSync, statSync } from 'node:fs'
import { HafwError } from '@hafw/core'
import { loadInventory } from '@hafw/inventory'
import { labDown, labSites, type LabDownResult } from '@hafw/lab'
import { BaseCommand } from '../../lib/base.js'

export default class LabDown extends BaseCommand {
  static override summary = 'Remove a lab: containers, namespaces, bridges, probes and its files'
  static override description = 'Idempotent: a site without a lab is a success. Without arguments, takes down the only lab there is.'
  static override examples = ['<%= config.bin %> lab down lab', '<%= config.bin %> lab down inventory/lab.yaml', '<%= config.bin %> lab down --all']
  static override args = { target: Args.string({ description: 'site name, or the inventory file the lab was made from' }) }
  static override flags = { all: Flags.boolean({ description: 'every lab on this machine', exclusive: ['target'] }) }

  async run(): Promise<LabDownResult[]> {
    const { args, flags } = await this.parse(LabDown)
    let site: string | undefined
    if (args.target) {
      site = existsSync(args.target) && statSync(args.target).isFile() ? (await loadInventory(args.target)).site : args.target
    } else if (!flags.all) {
      const sites = await labSites()
      if (sites.length > 1) throw new HafwError(`labs are up for sites ${sites.join(', ')}: name one, or use --all`)
      site = sites[0]
      if (!site) {
        if (!this.jsonEnabled()) this.log('no lab is up')
        return []
      }
    }
    const r = await labDown(site, this.progress(flags.verbose))
    if (!this.jsonEnabled()) for (const x of r) this.log(x.removed ? `site ${x.site}: lab down (${x.hosts} hosts, ${x.probes} probes) in ${(x.ms / 1000).toFixed(1)} s` : `site ${x.site}: no lab`)
    return r
  }
}
