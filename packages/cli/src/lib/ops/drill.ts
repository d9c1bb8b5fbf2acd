import { registerOperation } from '@hafw/queue'
import { drillPairsOf, runDrillJob, type DrillJobInput, type DrillResult } from '@hafw/drill'
import { saveReport } from '@hafw/report'
import { loadModelForCli } from '../model.js'

/**
 * 'drill' (`hafw drill`, `hafw schedule add drill FILE --pair P --set mode=crash`): input
 * {file, pair, mode, failback, probeFlows, ...}. Every drill is saved where `hafw reports` finds
 * it (the worker's state directory). Never retried: a second attempt would fail the pair over again.
 */
export const drill = registerOperation<DrillJobInput, DrillResult>(
  'drill',
  async (input, progress, signal, lease) => {
    const r = await runDrillJob(input, progress, signal, (i) => loadModelForCli(i.file, i.overlay ? { overlay: i.overlay } : {}), lease)
    const saved = await saveReport(r)
    progress({ t: Date.now(), level: 'info', scope: r.pair, message: `drill ${r.verdict.toUpperCase()}; saved as report ${saved.id} (${saved.html})` })
    return r
  },
  { pairOf: drillPairsOf, attempts: 1 },
)
