import { HafwError, InvalidInputError, isHafwError, type SourceIssue } from '@hafw/core'

/** Network faults worth retrying when they are not wrapped in a HafwError that decides otherwise. */
const TRANSIENT_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN', 'EAI_AGAIN', 'ECONNABORTED'])

/**
 * Whether a failed run may be retried: a HafwError says so itself (transient); other errors
 * count when they (or a cause) are connection refused/reset or a timeout. Everything else —
 * invalid input, a refused host key, a failed check, a bug — fails at once.
 */
export function isTransient(e: unknown): boolean {
  for (let cur = e, depth = 0; cur && depth < 5; cur = (cur as { cause?: unknown }).cause, depth++) {
    if (isHafwError(cur)) return cur.transient
    const err = cur as { code?: unknown; name?: unknown }
    if (typeof err.code === 'string' && TRANSIENT_CODES.has(err.code)) return true
    if (err.name === 'TimeoutError') return true
  }
  return false
}

/** What the queue keeps of an error so the submitting CLI can rethrow it with the same exit code. */
export interface JobError {
  name: string
  message: string
  exitCode: number
  transient: boolean
  /** Errno-style code (ECONNREFUSED...) when there was one. */
  code?: string
  issues?: SourceIssue[]
  /** Extra structured detail (e.g. a rollout's per-pair summary). */
  details?: unknown
}

export function serializeError(e: unknown, details?: unknown): JobError {
  const err = e instanceof Error ? e : new Error(String(e))
  let code: string | undefined
  for (let cur: unknown = err, d = 0; cur && d < 5 && !code; cur = (cur as { cause?: unknown }).cause, d++) {
    const c = (cur as { code?: unknown }).code
    if (typeof c === 'string') code = c
  }
  const out: JobError = {
    name: err.name,
    message: isHafwError(err) ? err.message : `${err.name}: ${err.message}`,
    exitCode: isHafwError(err) ? err.exitCode : 1,
    transient: isTransient(err),
  }
  if (code) out.code = code
  if (err instanceof InvalidInputError) out.issues = err.issues
  const d = details ?? (err as { details?: unknown }).details
  if (d !== undefined) out.details = d
  return out
}

/** A HafwError that carries a job's error across the queue (exit code, transient, issues). */
export class JobFailedError extends HafwError {
  readonly jobId: string
  readonly details: unknown
  constructor(jobId: string, e: JobError) {
    super(e.message, { exitCode: e.exitCode, transient: e.transient })
    this.name = e.name === 'HafwError' || e.name === 'InvalidInputError' ? e.name : 'JobFailedError'
    this.jobId = jobId
    this.details = e.details
  }
}

export function deserializeError(jobId: string, e: JobError): HafwError {
  if (e.issues?.length) {
    const err = new InvalidInputError(e.issues, e.message.split('\n')[0]!.replace(/:$/, ''))
    return err
  }
  return new JobFailedError(jobId, e)
}

export const cancelledError = (reason: string) => new HafwError(`cancelled: ${reason}`, { exitCode: 130 })
