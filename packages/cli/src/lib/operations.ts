/**
 * Every operation the queue can run, declared once here. `hafw worker` and each command that
 * submits jobs import this module, so workers and CLIs agree on names and code.
 *
 * Declared, not imported: an operation's module (which registers it) is imported when a job of
 * it is first submitted or run, so one command does not load every operation's packages
 * (apply, drill, verify...: most of the CLI's start-up before). `hafw worker` loads them all.
 *
 * To run an operation as a job: registerOperation(name, fn, { pairOf }) in a module (see
 * ops/verify.ts), declare it below, then in the command call
 * `submitAndWait(ref, input, { detach, progress, signal })` (see jobs/ping.ts).
 */
import { declareOperations, ping, type OperationRef } from '@hafw/queue'
import type { ApplyInput, PairApplyResult } from '@hafw/apply'
import type { VerifyInput, VerifyResult } from '@hafw/verify'
import type { DrillJobInput, DrillResult } from '@hafw/drill'

/** A handle by name (the type follows); the module behind it registers the same name. */
const ref = <I, R>(name: string): OperationRef<I, R> => ({ name })

// @hafw/apply registers 'apply.pair' itself (applyPairOp).
declareOperations(['apply.pair'], () => import('@hafw/apply'))
declareOperations(['verify'], () => import('./ops/verify.js'))
declareOperations(['drill'], () => import('./ops/drill.js'))

export const operations = {
  ping,
  applyPair: ref<ApplyInput, PairApplyResult>('apply.pair'),
  verify: ref<VerifyInput, VerifyResult>('verify'),
  drill: ref<DrillJobInput, DrillResult>('drill'),
}
