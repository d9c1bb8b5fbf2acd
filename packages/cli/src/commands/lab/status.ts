import { Args } from '@oclif/core'
import { formatLabStatus, labStatus, type LabStatus } from '@hafw/lab'
import { BaseCommand } from '../../lib/base.js'

export default class LabStatusCmd extends BaseCommand {
  static override summary = 'Show the labs on this machine: hosts, probes, memory, management addresses'
  static override examples = ['<%= config.bin %> lab status', '<%= config.bin %> lab status lab --json']
  static override args = { site: Args.string({ description: 'only this site' }) }

  async run(): Promise<LabStatus[]> {
    const { args } = await this.parse(LabStatusCmd)
    const labs = await labStatus(args.site)
    if (!this.jsonEnabled()) this.log(formatLabStatus(labs))
    return labs
  }
}
