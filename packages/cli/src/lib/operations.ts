/**
 * Every operation the queue can run, registered once here. `hafw worker` and each command that
 * submits jobs import this module, so workers and CLIs agree on names and code.
 *
 * To run an operation as a job: registerOperation(name, fn, { pairOf }) here, then in the
 * command call `submitAndWait(ref, input, { detach, progress, signal })` (see jobs/ping.ts).
 */
import { ping, registerOperation } from '@hafw/queue'
import { applyPairOp } from '@hafw/apply'
import { verifyPair, verifyPairsOf, type VerifyInput, type VerifyResult } from '@hafw/verify'
import { drillPairsOf, runDrillJob, type DrillJobInput, type DrillResult } from '@hafw/drill'
import { saveReport } from '@hafw/report'
import { loadModelForCli } from './model.js'

/**
 * 'verify' (`hafw verify`, `hafw schedule add verify`): input {file, pair | pairs, deadline, ...}.
 * The worker loads the inventory itself, with the running lab's SSH overlay when there is one.
 * Locks the pairs it reads (a drill or apply in progress would only show as divergence); no
 * retries: verify re-polls on its own, and reports unreachable nodes as problems.
 */
const verify = registerOperation<VerifyInput, VerifyResult>(
  'verify',
  (input, progress, signal) => verifyPair(input, progress, signal, (i) => loadModelForCli(i.file, i.overlay ? { overlay: i.overlay } : {})),
  { pairOf: verifyPairsOf, attempts: 1 },
)

/**
 * 'drill' (`hafw drill`, `hafw schedule add drill FILE --pair P --set mode=crash`): input
 * {file, pair, mode, failback, probeFlows, ...}. Every drill is saved where `hafw reports` finds
 * it (the worker's state directory). Never retried: a second attempt would fail the pair over again.
 */
const drill = registerOperation<DrillJobInput, DrillResult>(
  'drill',
  async (input, progress, signal, lease) => {
    const r = await runDrillJob(input, progress, signal, (i) => loadModelForCli(i.file, i.overlay ? { overlay: i.overlay } : {}), lease)
    const saved = await saveReport(r)
    progress({ t: Date.now(), level: 'info', scope: r.pair, message: `drill ${r.verdict.toUpperCase()}; saved as report ${saved.id} (${saved.html})` })
    return r
  },
  { pairOf: drillPairsOf, attempts: 1 },
)

export const operations = { ping, applyPair: applyPairOp, verify, drill }
