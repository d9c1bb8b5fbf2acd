import { Flags } from '@oclif/core'
import { submitAndWait, type PingResult } from '@hafw/queue'
import { BaseCommand } from '../../lib/base.js'
import { interruptSignal } from '../../lib/queue.js'
import { operations } from '../../lib/operations.js'

/** Also the model for every command that runs an operation as a job. */
export default class JobsPing extends BaseCommand {
  static override summary = 'Run a no-op job and report which worker took it and how fast'
  static override description = 'Without a listening worker, this process runs it (as every job command does). With --detach, prints the job id only.'
  static override examples = ['<%= config.bin %> jobs ping', '<%= config.bin %> jobs ping --detach']
  static override flags = {
    detach: Flags.boolean({ description: 'print the job id and leave the job to the workers' }),
    'hold-ms': Flags.integer({ description: 'keep the job running this long', default: 0, min: 0 }),
  }

  async run(): Promise<{ jobId: string } | (PingResult & { jobId: string; roundTripMs: number })> {
    const { flags } = await this.parse(JobsPing)
    const t0 = Date.now()
    const r = await submitAndWait(operations.ping, { holdMs: flags['hold-ms'] }, { detach: flags.detach, progress: this.progress(flags.verbose), signal: interruptSignal() })
    if (r.detached) {
      this.log(r.jobId)
      return { jobId: r.jobId }
    }
    const out = { jobId: r.jobId, ...r.result, roundTripMs: Date.now() - t0 }
    if (!this.jsonEnabled()) this.log(`job ${out.jobId}: answered by ${out.host} PID ${out.pid} in ${out.roundTripMs} ms`)
    return out
  }
}
