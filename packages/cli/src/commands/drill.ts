import { Args, Flags } from '@oclif/core'
import { writeFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { HafwError } from '@hafw/core'
import { BOUNDS_HELP, DEFAULTS, MODES, type DrillJobInput, type DrillMode, type DrillResult } from '@hafw/drill'
import { loadInventory } from '@hafw/inventory'
import { submitAndWait } from '@hafw/queue'
import { renderHtml, renderTable } from '@hafw/report'
import { BaseCommand } from '../lib/base.js'
import { overlayFlag, acceptNewFlag } from '../lib/model.js'
import { interruptSignal } from '../lib/queue.js'
import { operations } from '../lib/operations.js'

export default class Drill extends BaseCommand {
  static override summary = 'Fail a pair over on purpose with witness traffic running through it, and measure what happened to the connections'
  static override description = `Preflight: verify must pass (one MASTER, sync healthy, state converged), else the drill refuses unless --force.
Witnesses: with probe hosts (the lab's, for the pair's drill.probes or DNAT targets) --probe-flows long-lived TCP flows and UDP streams through the pair, on the DNAT path (client -> VIP:port -> server) and the forwarded path (client -> server, routed through the pair), one sequenced message every --interval ms each; per flow the worst stall, resets and lost messages. Without probe hosts (or --probe-flows 0) the established TCP flows through the active node are the witnesses: hafw reports which of them carry packets on the new active node (conntrack accounting is turned on for the drill).
Modes, on the node holding the VIPs:
  graceful   systemctl stop keepalived
  crash      kill -9 keepalived and conntrackd, every pair link down (not the one hafw's SSH uses)
  link       one watched link down (--link, default: the first of the VRRP instances' track_interface links)
  partition  drop VRRP (IP protocol 112) in and out on one segment (--link, default: the first VRRP interface)
Timeline, on the nodes' own clocks corrected by their measured offsets: trigger, standby MASTER (keepalived's journal), VIPs on the new master (ip monitor), commit started/finished with its entry count (hafw-notify's state.json), the first witness echo after the VIPs moved; then verify until converged. --failback clears the fault so the original node takes the VIPs back (a nopreempt pair is handed over with a keepalived restart) and measures the same way. Whatever happens, the fault is cleared at the end; the node also arms a systemd timer that restores it by itself should hafw lose it.
Verdict: pass only if no witness flow was reset or left stalled, every phase's data-plane gap is within its bound, and verify passes after each phase (and after the fault is cleared).
${BOUNDS_HELP}
Load-balancer pairs: the VRRP part is drilled (IPVS virtual servers are not exercised).
Every drill is saved for \`hafw reports list|show\`. Runs as a job (a \`hafw worker\` takes it; without one, this process does).

EXIT STATUS
  0  verdict pass
  1  verdict fail, refused by the preflight, or bad input`
  static override examples = [
    '<%= config.bin %> drill inventory/lab.yaml --pair edge1 --mode graceful --failback',
    '<%= config.bin %> drill inventory/lab.yaml --pair edge1 --mode crash --failback --probe-flows 200 --report crash.html',
    '<%= config.bin %> drill site.yaml --pair edge1 --mode link --link inside --json',
  ]
  static override args = { file: Args.string({ description: 'inventory file', required: true }) }
  static override flags = {
    pair: Flags.string({ char: 'p', description: 'the pair to drill', required: true, helpValue: 'PAIR' }),
    mode: Flags.string({ char: 'm', description: 'what to break', options: [...MODES], required: true }),
    failback: Flags.boolean({ description: 'fail back to the original node afterwards and measure that too' }),
    'probe-flows': Flags.integer({ description: 'witness flows from the probe hosts (0: the pair\'s own established flows)', default: DEFAULTS.probeFlows, min: 0, max: 5000 }),
    duration: Flags.integer({ description: 'seconds each phase is watched after its trigger', default: DEFAULTS.durationS, min: 2, max: 600 }),
    interval: Flags.integer({ description: 'ms between two witness messages of a flow', default: DEFAULTS.intervalMs, min: 5, max: 1000 }),
    link: Flags.string({ description: 'link and partition modes: the interface (logical name or device) to act on', helpValue: 'IFACE' }),
    report: Flags.string({ description: 'also write the HTML report to this file', helpValue: 'FILE.html' }),
    force: Flags.boolean({ description: 'drill even when the preflight verify fails' }),
    'verify-deadline': Flags.integer({ description: 'seconds verify may take to see the pair converged after each phase', default: DEFAULTS.verifyDeadlineS, min: 1, max: 600 }),
    detach: Flags.boolean({ description: 'print the job id and leave the job to the workers' }),
    'accept-new': acceptNewFlag,
    overlay: overlayFlag,
  }

  async run(): Promise<DrillResult | { jobId: string }> {
    const { args, flags } = await this.parse(Drill)
    const file = resolve(args.file)
    const model = await loadInventory(file)
    if (!model.pairs.some((p) => p.name === flags.pair)) throw new HafwError(`${args.file}: no pair "${flags.pair}" (pairs: ${model.pairs.map((p) => p.name).join(', ') || 'none'})`)
    const input: DrillJobInput = {
      file,
      pair: flags.pair,
      mode: flags.mode as DrillMode,
      failback: flags.failback,
      probeFlows: flags['probe-flows'],
      durationS: flags.duration,
      intervalMs: flags.interval,
      force: flags.force,
      verifyDeadlineS: flags['verify-deadline'],
      ...(flags.link ? { link: flags.link } : {}),
      ...(flags['accept-new'] ? { acceptNew: true } : {}),
      ...(flags.overlay ? { overlay: resolve(flags.overlay) } : {}),
    }
    const job = await submitAndWait(operations.drill, input, { detach: flags.detach, progress: this.progress(flags.verbose), signal: interruptSignal() })
    if (job.detached) {
      this.log(job.jobId)
      return { jobId: job.jobId }
    }
    const r = job.result
    if (flags.report) {
      await writeFile(flags.report, renderHtml(r))
      process.stderr.write(`report: ${flags.report}\n`)
    }
    if (this.jsonEnabled()) {
      if (r.verdict !== 'pass') {
        // a result with hundreds of flows is bigger than a pipe's buffer: flush before exiting
        await new Promise<void>((res) => process.stdout.write(JSON.stringify(r, null, 2) + '\n', () => res()))
        this.exit(1)
      }
      return r
    }
    this.log(renderTable(r, { color: process.stdout.isTTY && !process.env.NO_COLOR }).trimEnd())
    this.log(`\nsaved: hafw reports show ${r.id}`)
    if (r.verdict !== 'pass') this.exit(1)
    return r
  }
}
