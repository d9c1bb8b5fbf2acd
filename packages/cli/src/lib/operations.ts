/**
 * Every operation the queue can run, registered once here. `hafw worker` and each command that
 * submits jobs import this module, so workers and CLIs agree on names and code.
 *
 * To run an operation as a job: registerOperation(name, fn, { pairOf }) here, then in the
 * command call `submitAndWait(ref, input, { detach, progress, signal })` (see jobs/ping.ts).
 */
import { ping } from '@hafw/queue'
import { applyPairOp } from '@hafw/apply'

export const operations = { ping, applyPair: applyPairOp }
