import { HafwError, type Operation } from '@hafw/core'

/**
 * Operations the queue can run. The CLI and every worker register the same operations (by
 * importing the same module), so a job submitted anywhere runs the same code anywhere.
 */
export interface OperationOptions<I> {
  /** The pairs a run touches: each is locked for the whole run (one job per pair at a time). */
  pairOf: (input: I) => string[]
  /** Total tries when the operation fails with a transient fault (default 4). */
  attempts?: number
  /** Delay before the first retry; doubles each time (default 2000 ms). */
  backoffMs?: number
}

export interface RegisteredOperation<I = unknown, R = unknown> {
  name: string
  fn: Operation<I, R>
  pairOf: (input: I) => string[]
  attempts: number
  backoffMs: number
}

/** A typed handle: pass it to submit()/submitAndWait() and the result type follows. */
export interface OperationRef<I, R> {
  readonly name: string
  /** Phantom field carrying the types; never set. */
  readonly __types?: { input: I; result: R }
}

/** Reserved job name of the rollout parent job. */
export const ROLLOUT = 'rollout'

const ops = new Map<string, RegisteredOperation>()
const NAME = /^[a-z][a-z0-9._-]{0,63}$/
const PAIR = /^[A-Za-z0-9][A-Za-z0-9_.\/-]{0,127}$/

function checkName(name: string): void {
  if (!NAME.test(name) || name === ROLLOUT) throw new HafwError(`operation name "${name}": expected lower-case letters, digits, ".", "_" or "-" (and not "${ROLLOUT}")`)
}

export function registerOperation<I, R>(name: string, fn: Operation<I, R>, opts: OperationOptions<I>): OperationRef<I, R> {
  checkName(name)
  const prev = ops.get(name)
  if (prev && prev.fn !== fn) throw new HafwError(`operation "${name}" is already registered with another function`)
  ops.set(name, {
    name,
    fn: fn as Operation<unknown, unknown>,
    pairOf: opts.pairOf as (input: unknown) => string[],
    attempts: opts.attempts ?? 4,
    backoffMs: opts.backoffMs ?? 2000,
  })
  return { name }
}

export function getOperation(name: string): RegisteredOperation | undefined {
  return ops.get(name)
}

/** Operations declared by name whose module (which registers them) is imported on first use. */
const lazy = new Map<string, () => Promise<unknown>>()

/**
 * Declare operations that `load` registers (by importing their module), without loading it yet:
 * a CLI run submits or runs one operation, and importing every operation's code up front cost
 * most of its start-up (bench/cli-start.ts). Declared names count as known everywhere.
 */
export function declareOperations(names: string[], load: () => Promise<unknown>): void {
  for (const name of names) {
    checkName(name)
    lazy.set(name, load)
  }
}

/** The operation, importing its module first when it was only declared; undefined when unknown. */
export async function loadOperation(name: string): Promise<RegisteredOperation | undefined> {
  const have = ops.get(name)
  if (have) return have
  const load = lazy.get(name)
  if (!load) return undefined
  await load()
  const op = ops.get(name)
  if (!op) throw new HafwError(`operation "${name}" was declared, but loading its module did not register it`)
  return op
}

/** Load every declared operation (a long-running worker: fail at start, not at the first job). */
export async function loadAllOperations(): Promise<void> {
  await Promise.all([...lazy.keys()].map((name) => loadOperation(name)))
}

export function operationNames(): string[] {
  return [...new Set([...ops.keys(), ...lazy.keys()])].sort()
}

/** The operation's pairs, checked, de-duplicated and sorted (locks are taken in this order). */
export function pairsFor(op: RegisteredOperation, input: unknown): string[] {
  const pairs = op.pairOf(input)
  if (!Array.isArray(pairs)) throw new HafwError(`operation "${op.name}": pairOf() must return an array of pair names`)
  for (const p of pairs) {
    if (typeof p !== 'string' || !PAIR.test(p)) throw new HafwError(`operation "${op.name}": invalid pair name ${JSON.stringify(p)}`)
  }
  return [...new Set(pairs)].sort()
}

/** Job data travels through Redis and shows in `hafw jobs`: refuse anything that looks like a secret. */
const SECRET_KEY = /pass(word|phrase)?$|secret|token|private.?key|auth_?pass|credential/i

export function assertNoSecrets(value: unknown, path = 'input'): void {
  if (Array.isArray(value)) value.forEach((v, i) => assertNoSecrets(v, `${path}[${i}]`))
  else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (SECRET_KEY.test(k) && v !== undefined && v !== null && v !== '') {
        throw new HafwError(`${path}.${k}: job data must not carry secrets (it is stored in Redis and shown by \`hafw jobs show\`); pass a file path or let the worker read it`)
      }
      assertNoSecrets(v, `${path}.${k}`)
    }
  }
}
