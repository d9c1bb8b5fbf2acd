import { Args } from '@oclif/core'
import { loadInventory, type Model } from '@hafw/inventory'
import { stringify } from 'yaml'
import { BaseCommand } from '../../lib/base.js'

export default class InventoryShow extends BaseCommand {
  static override summary = 'Print the normalised model: the inventory with every default filled in'
  static override description = 'YAML by default, JSON with --json. An invalid inventory prints every problem and exits 1.'
  static override examples = ['<%= config.bin %> inventory show inventory/lab.yaml', '<%= config.bin %> inventory show inventory/lab.yaml --json | jq .pairs[0].vrrp']
  static override args = { file: Args.string({ description: 'inventory file', required: true }) }

  async run(): Promise<Model> {
    const { args } = await this.parse(InventoryShow)
    const model = await loadInventory(args.file)
    // Addresses print as written; the numeric forms are for code, not for people.
    if (!this.jsonEnabled()) this.log(stringify(model, (k, v) => (k === 'ipNum' || k === 'netNum' ? undefined : v)))
    return JSON.parse(JSON.stringify(model, (k, v) => (k === 'ipNum' || k === 'netNum' ? undefined : v))) as Model
  }
}
