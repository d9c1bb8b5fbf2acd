/**
 * Errors that reach the operator. A HafwError is expected (bad input, a refused host key, an
 * unreachable node): the CLI prints its message without a stack and exits with its code.
 */
export class HafwError extends Error {
  /** Process exit code the CLI uses for this error. */
  readonly exitCode: number
  /** Whether a job queue may retry the operation that raised it (transient faults only). */
  readonly transient: boolean
  constructor(message: string, opts: { exitCode?: number; transient?: boolean; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause })
    this.name = 'HafwError'
    this.exitCode = opts.exitCode ?? 1
    this.transient = opts.transient ?? false
  }
}

/** One problem in an input file, located precisely. */
export interface SourceIssue {
  file: string
  line: number
  column: number
  /** Field path in the document, e.g. pairs[0].nodes[1].priority */
  path: string
  message: string
}

export function formatIssue(i: SourceIssue): string {
  // line 0: the file as a whole (missing, unreadable), no position to point at
  const where = i.line > 0 ? `${i.file}:${i.line}:${i.column}` : i.file
  return `${where}: ${i.path ? i.path + ': ' : ''}${i.message}`
}

/** Invalid input: never retried, nothing is pushed anywhere. */
export class InvalidInputError extends HafwError {
  readonly issues: SourceIssue[]
  constructor(issues: SourceIssue[], summary?: string) {
    const head = summary ?? `${issues.length} problem${issues.length === 1 ? '' : 's'} in the inventory`
    super([head + ':', ...issues.map((i) => '  ' + formatIssue(i))].join('\n'), { exitCode: 1 })
    this.name = 'InvalidInputError'
    this.issues = issues
  }
}

export function isHafwError(e: unknown): e is HafwError {
  return e instanceof HafwError
}
