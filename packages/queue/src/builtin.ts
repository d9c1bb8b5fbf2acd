import { hostname } from 'node:os'
import { InvalidInputError } from '@hafw/core'
import { registerOperation } from './registry.js'

export interface PingInput {
  /** Keep the job running this long (ms), e.g. to watch it in `hafw jobs list`. */
  holdMs?: number
}
export interface PingResult {
  host: string
  pid: number
  heldMs: number
}

/**
 * The queue's own health check (`hafw jobs ping`): proves a worker takes jobs and answers.
 * Locks no pair. Also the smallest example of an operation run as a job.
 */
export const ping = registerOperation<PingInput, PingResult>(
  'queue.ping',
  async (input, progress, signal) => {
    const holdMs = input.holdMs ?? 0
    if (!Number.isInteger(holdMs) || holdMs < 0 || holdMs > 600_000) {
      throw new InvalidInputError([{ file: '<job input>', line: 0, column: 0, path: 'holdMs', message: `expected 0..600000 ms, found ${JSON.stringify(input.holdMs)}` }], 'invalid ping input')
    }
    progress({ t: Date.now(), level: 'info', scope: '', message: `pong from ${hostname()} (PID ${process.pid})` })
    const t0 = Date.now()
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(resolve, holdMs)
      signal.addEventListener('abort', () => (clearTimeout(t), reject(signal.reason)), { once: true })
    })
    return { host: hostname(), pid: process.pid, heldMs: Date.now() - t0 }
  },
  { pairOf: () => [], attempts: 1 },
)
