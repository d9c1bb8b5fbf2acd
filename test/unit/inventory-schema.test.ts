import { describe, expect, it } from 'vitest'
import { readdirSync, readFileSync } from 'node:fs'
import { parse } from 'yaml'
import { Ajv2020 } from 'ajv/dist/2020.js'
import { inventoryJsonSchema } from '@hafw/inventory'

/*
 * The JSON Schema is for editors (yaml-language-server). It must be a valid draft 2020-12 schema
 * (ajv compiles it in strict mode) that accepts every valid inventory; what only the cross-field
 * rules can see is beyond it, but unknown fields, enumerations and patterns are not.
 */

const schema = inventoryJsonSchema()
const validate = new Ajv2020({ strict: true, allErrors: true }).compile(schema)
const yamlFile = (f: string) => parse(readFileSync(f, 'utf8')) as unknown

describe('inventory JSON Schema', () => {
  it('is a draft 2020-12 schema with a title', () => {
    expect(schema.$schema).toBe('https://json-schema.org/draft/2020-12/schema')
    expect(schema.title).toBe('hafw inventory')
  })

  const good = ['inventory/lab.yaml', 'inventory/reference.yaml', ...readdirSync('test/fixtures/inventory/good').map((f) => `test/fixtures/inventory/good/${f}`)]
  it.each(good)('accepts %s', (f) => {
    expect(validate(yamlFile(f)), JSON.stringify(validate.errors)).toBe(true)
  })

  // Bad fixtures whose problem a JSON Schema can express: it must refuse them too.
  it.each([
    ['unknown-pair', 'additionalProperties'],
    ['unknown-node-typo', 'additionalProperties'],
    ['enum-kind', 'enum'],
    ['enum-lb-algo', 'enum'],
    ['priority-255', 'maximum'],
    ['port-zero', 'minimum'],
    ['pair-one-node', 'minItems'],
    ['inject-iface-semicolon', 'pattern'],
    ['inject-log-prefix-quote', 'anyOf'],
    ['missing-site', 'required'],
  ])('refuses bad/%s.yaml (%s)', (name, keyword) => {
    expect(validate(yamlFile(`test/fixtures/inventory/bad/${name}.yaml`))).toBe(false)
    expect(validate.errors!.map((e) => e.keyword)).toContain(keyword)
  })
})
