import { registerOperation } from '@hafw/queue'
import { verifyPair, verifyPairsOf, type VerifyInput, type VerifyResult } from '@hafw/verify'
import { loadModelForCli } from '../model.js'

/**
 * 'verify' (`hafw verify`, `hafw schedule add verify`): input {file, pair | pairs, deadline, ...}.
 * The worker loads the inventory itself, with the running lab's SSH overlay when there is one.
 * Locks the pairs it reads (a drill or apply in progress would only show as divergence); no
 * retries: verify re-polls on its own, and reports unreachable nodes as problems.
 */
export const verify = registerOperation<VerifyInput, VerifyResult>(
  'verify',
  (input, progress, signal) => verifyPair(input, progress, signal, (i) => loadModelForCli(i.file, i.overlay ? { overlay: i.overlay } : {})),
  { pairOf: verifyPairsOf, attempts: 1 },
)
