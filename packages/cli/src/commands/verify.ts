import { Args, Flags } from '@oclif/core'
import { resolve } from 'node:path'
import { loadInventory } from '@hafw/inventory'
import { submitAndWait } from '@hafw/queue'
import { formatVerify, selectPairs, verifyResultOf, type VerifyInput, type VerifyResult } from '@hafw/verify'
import { BaseCommand } from '../lib/base.js'
import { overlayFlag, acceptNewFlag } from '../lib/model.js'
import { interruptSignal } from '../lib/queue.js'
import { operations } from '../lib/operations.js'

export default class Verify extends BaseCommand {
  static override summary = "Prove each pair's connection-tracking state converged, entry by entry, and its VRRP and sync link are healthy"
  static override description = `Per pair, over one SSH session per node: who holds the VIPs decides the active node; its kernel table (conntrack -L, or --source internal: conntrackd -i) and the standby's external cache (conntrackd -e) are streamed and compared entry by entry (original tuple, zone, TCP state, mark, and the NAT reply tuple where both sides print one), leaving out what the active node's conntrackd Filter keeps out of sync. A difference counts once it is older than --grace (the entry's age when the dump prints one, otherwise by persisting across polls). Re-polls until converged or --deadline.
Also failures: two MASTERs for an instance (split brain), no MASTER, VIPs of one sync group on different nodes or on the wrong node, a sync link that is DOWN or silent, lost or malformed sync messages counted during the check, conntrackd or keepalived not running, an unreachable node. Load-balancer pairs (no conntrack sync): VRRP health only.
Runs as a job (a \`hafw worker\` takes it; without one, this process does).

EXIT STATUS
  0  every pair converged and healthy
  1  a pair did not converge or has a problem, or bad input`
  static override examples = [
    '<%= config.bin %> verify inventory/lab.yaml',
    '<%= config.bin %> verify site.yaml --pair edge1 --deadline 60 --json | jq ".pairs[0].counts"',
  ]
  static override args = { file: Args.string({ description: 'inventory file', required: true }) }
  static override flags = {
    pair: Flags.string({ char: 'p', description: 'only this pair', helpValue: 'PAIR' }),
    deadline: Flags.integer({ description: 'seconds to keep re-polling a pair that has not converged (0: one poll)', default: 30, min: 0, max: 3600 }),
    grace: Flags.integer({ description: 'seconds a difference may last before it counts', default: 5, min: 0, max: 600 }),
    source: Flags.string({ description: "the active node's side of the comparison", options: ['kernel', 'internal'], default: 'kernel' }),
    samples: Flags.integer({ description: 'samples listed per kind of difference', default: 5, min: 0, max: 1000 }),
    detach: Flags.boolean({ description: 'print the job id and leave the job to the workers' }),
    'accept-new': acceptNewFlag,
    overlay: overlayFlag,
  }

  async run(): Promise<VerifyResult | { jobId: string }> {
    const { args, flags } = await this.parse(Verify)
    const file = resolve(args.file)
    // The pairs to lock; the job loads the inventory again (with the lab overlay) where it runs.
    const pairs = selectPairs(await loadInventory(file), flags.pair ? [flags.pair] : undefined).map((p) => p.name)
    const input: VerifyInput = {
      file,
      ...(flags.pair ? { pair: flags.pair } : { pairs }),
      deadline: flags.deadline,
      grace: flags.grace,
      source: flags.source as VerifyInput['source'],
      samples: flags.samples,
      ...(flags['accept-new'] ? { acceptNew: true } : {}),
      ...(flags.overlay ? { overlay: resolve(flags.overlay) } : {}),
    }
    let r: VerifyResult
    try {
      const job = await submitAndWait(operations.verify, input, { detach: flags.detach, progress: this.progress(flags.verbose), signal: interruptSignal() })
      if (job.detached) {
        this.log(job.jobId)
        return { jobId: job.jobId }
      }
      r = job.result
    } catch (e) {
      const failed = verifyResultOf(e)
      if (!failed) throw e
      r = failed
    }
    if (this.jsonEnabled()) {
      if (!r.ok) {
        this.logJson(r)
        this.exit(1)
      }
      return r
    }
    this.log(formatVerify(r))
    if (!r.ok) this.exit(1)
    return r
  }
}
