import { Args } from '@oclif/core'
import { readInventory } from '@hafw/inventory'
import { formatIssue, type SourceIssue } from '@hafw/core'
import { BaseCommand } from '../../lib/base.js'

export default class InventoryValidate extends BaseCommand {
  static override summary = 'Validate inventories: every problem at once, with file:line:column and field'
  static override description = [
    'Every problem goes to stderr, one per line, as FILE:LINE:COLUMN: FIELD: MESSAGE.',
    'Exit 0 when every file is valid, 1 otherwise. With --json, stdout holds',
    '{ valid, files: [{ file, valid, issues: [{ file, line, column, path, message }] }] }.',
    'Nothing is contacted.',
  ].join('\n')
  static override examples = [
    '<%= config.bin %> inventory validate inventory/lab.yaml',
    '<%= config.bin %> inventory validate inventory/*.yaml --json',
  ]
  static override strict = false
  static override args = { file: Args.string({ description: 'inventory file(s)', required: true }) }

  async run(): Promise<{ valid: boolean; files: { file: string; valid: boolean; issues: SourceIssue[] }[] }> {
    const { argv } = await this.parse(InventoryValidate)
    const files: { file: string; valid: boolean; issues: SourceIssue[] }[] = []
    for (const file of argv as string[]) {
      const { issues } = await readInventory(file)
      files.push({ file, valid: issues.length === 0, issues })
      if (!this.jsonEnabled()) {
        if (issues.length === 0) this.log(`${file}: valid`)
        else for (const i of issues) process.stderr.write(formatIssue(i) + '\n')
      }
    }
    const valid = files.every((f) => f.valid)
    if (!valid) {
      if (this.jsonEnabled()) this.logJson({ valid, files })
      else {
        const n = files.reduce((k, f) => k + f.issues.length, 0)
        const bad = files.filter((f) => !f.valid).length
        process.stderr.write(`${n} problem${n === 1 ? '' : 's'} in ${bad} of ${files.length} file${files.length === 1 ? '' : 's'}\n`)
      }
      this.exit(1)
    }
    return { valid, files }
  }
}
