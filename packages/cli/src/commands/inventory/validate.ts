import { Args } from '@oclif/core'
import { readFile } from 'node:fs/promises'
import { parseInventory } from '@hafw/inventory'
import { formatIssue, type SourceIssue } from '@hafw/core'
import { BaseCommand } from '../../lib/base.js'

export default class InventoryValidate extends BaseCommand {
  static override summary = 'Validate inventories: every problem at once, with file:line:column and field'
  static override description = 'Exit 0 when every file is valid, 1 otherwise. Nothing is contacted.'
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
      let issues: SourceIssue[]
      try {
        issues = parseInventory(await readFile(file, 'utf8'), file).issues
      } catch (e) {
        issues = [{ file, line: 0, column: 0, path: '', message: (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message }]
      }
      files.push({ file, valid: issues.length === 0, issues })
      if (!this.jsonEnabled()) {
        if (issues.length === 0) this.log(`${file}: valid`)
        else for (const i of issues) process.stderr.write(formatIssue(i) + '\n')
      }
    }
    const valid = files.every((f) => f.valid)
    if (!valid) {
      if (this.jsonEnabled()) this.logJson({ valid, files })
      else process.stderr.write(`${files.reduce((n, f) => n + f.issues.length, 0)} problem(s) found\n`)
      this.exit(1)
    }
    return { valid, files }
  }
}
