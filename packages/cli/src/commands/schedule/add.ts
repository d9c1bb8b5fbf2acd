import { Args, Flags } from '@oclif/core'
import { resolve } from 'node:path'
import { access } from 'node:fs/promises'
import { HafwError } from '@hafw/core'
import type { ScheduleInfo } from '@hafw/queue'
import { BaseCommand } from '../../lib/base.js'
import { withQueue } from '../../lib/queue.js'

export default class ScheduleAdd extends BaseCommand {
  static override summary = 'Run drill, verify or plan on a pair on a cron schedule'
  static override description = `Each run is an ordinary job (same pair lock, retries and retention), listed by \`hafw jobs list\`. The job input is {file, pair, ...--set options}; the inventory path is stored, not its contents, so workers must see the same file. Adding an existing name replaces that schedule. Cron has 5 fields, or 6 with seconds first.`
  static override examples = [
    '<%= config.bin %> schedule add verify inventory/lab.yaml --pair edge1 --cron "*/15 * * * *"',
    '<%= config.bin %> schedule add drill inventory/lab.yaml --pair edge1 --cron "0 3 * * 1" --tz Europe/Berlin --set mode=graceful',
  ]
  static override args = {
    op: Args.string({ description: 'operation', required: true, options: ['drill', 'verify', 'plan'] }),
    file: Args.string({ description: 'inventory file', required: true }),
  }
  static override flags = {
    pair: Flags.string({ description: 'pair to run on', required: true }),
    cron: Flags.string({ description: 'cron expression', required: true }),
    tz: Flags.string({ description: 'IANA time zone of the cron expression (default: local time of the hafw processes)' }),
    name: Flags.string({ description: 'schedule name (default: OP-PAIR)' }),
    set: Flags.string({ description: 'operation option KEY=VALUE (repeatable)', multiple: true }),
  }

  async run(): Promise<ScheduleInfo> {
    const { args, flags } = await this.parse(ScheduleAdd)
    const file = resolve(args.file)
    await access(file).catch(() => {
      throw new HafwError(`${args.file}: no such file`)
    })
    const input: Record<string, unknown> = { file, pair: flags.pair }
    for (const kv of flags.set ?? []) {
      const m = /^([A-Za-z_][A-Za-z0-9_-]*)=(.*)$/.exec(kv)
      if (!m) throw new HafwError(`--set ${kv}: expected KEY=VALUE`)
      // Numbers and booleans as such, everything else as text.
      input[m[1]!] = /^-?\d+(\.\d+)?$/.test(m[2]!) ? Number(m[2]) : m[2] === 'true' ? true : m[2] === 'false' ? false : m[2]
    }
    const s = await withQueue((q) => q.addSchedule({ id: flags.name ?? `${args.op}-${flags.pair}`, op: args.op, input, cron: flags.cron, pairs: [flags.pair], ...(flags.tz ? { tz: flags.tz } : {}) }))
    if (!this.jsonEnabled()) this.log(`schedule ${s.id}: ${s.op} on ${s.pairs.join(',')} at "${s.cron}"${s.tz ? ` (${s.tz})` : ''}, next run ${s.next ?? '-'}`)
    return s
  }
}
