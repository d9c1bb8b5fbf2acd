import * as z from 'zod'
import { InventorySchema } from './schema.js'

/** JSON Schema of the inventory for editors (yaml-language-server). */
export function inventoryJsonSchema(): Record<string, unknown> {
  return {
    ...z.toJSONSchema(InventorySchema, { target: 'draft-2020-12', unrepresentable: 'any' }),
    title: 'hafw inventory',
  }
}
