import { inventoryJsonSchema } from '@hafw/inventory'
import { BaseCommand } from '../../lib/base.js'

export default class InventorySchemaCmd extends BaseCommand {
  static override summary = 'Print the inventory JSON Schema (for editors, e.g. yaml-language-server)'
  static override examples = ['<%= config.bin %> inventory schema > hafw.schema.json']

  async run(): Promise<Record<string, unknown>> {
    await this.parse(InventorySchemaCmd)
    const schema = inventoryJsonSchema()
    if (!this.jsonEnabled()) this.log(JSON.stringify(schema, null, 2))
    return schema
  }
}
