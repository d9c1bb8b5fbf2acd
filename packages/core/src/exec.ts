import { spawn } from 'node:child_process'
import { HafwError } from './errors.js'

export interface ExecOptions {
  input?: string | Buffer
  timeoutMs?: number
  signal?: AbortSignal
  env?: NodeJS.ProcessEnv
  cwd?: string
  /** Resolve with the result instead of throwing on a non-zero exit. */
  allowFail?: boolean
}

export interface ExecResult {
  code: number
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

/**
 * Run a local program without a shell (arguments are never re-parsed), with a timeout and
 * cancellation. Throws a HafwError naming the command on failure unless allowFail.
 */
export function exec(cmd: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    const out: Buffer[] = []
    const err: Buffer[] = []
    let timedOut = false
    const timer = opts.timeoutMs
      ? setTimeout(() => {
          timedOut = true
          child.kill('SIGKILL')
        }, opts.timeoutMs)
      : undefined
    const onAbort = () => child.kill('SIGKILL')
    opts.signal?.addEventListener('abort', onAbort, { once: true })
    child.stdout.on('data', (d: Buffer) => out.push(d))
    child.stderr.on('data', (d: Buffer) => err.push(d))
    child.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer)
      opts.signal?.removeEventListener('abort', onAbort)
      reject(
        new HafwError(e.code === 'ENOENT' ? `${cmd}: command not found` : `${cmd}: ${e.message}`, { cause: e }),
      )
    })
    child.on('close', (code, sig) => {
      clearTimeout(timer)
      opts.signal?.removeEventListener('abort', onAbort)
      const res: ExecResult = {
        code: code ?? -1,
        signal: sig,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      }
      if (opts.signal?.aborted) return reject(opts.signal.reason instanceof Error ? opts.signal.reason : new Error('aborted'))
      if (timedOut) return reject(new HafwError(`${cmd} ${args.join(' ')}: timed out after ${opts.timeoutMs} ms`, { transient: true }))
      if (res.code !== 0 && !opts.allowFail) {
        const detail = (res.stderr || res.stdout).trim().split('\n').slice(-5).join('\n')
        return reject(new HafwError(`${cmd} ${args.join(' ')}: exit ${res.code}${detail ? `\n${detail}` : ''}`))
      }
      resolve(res)
    })
    if (opts.input !== undefined) child.stdin.end(opts.input)
    else child.stdin.end()
  })
}

/** Whether a program is on PATH. */
export async function which(cmd: string): Promise<string | null> {
  const r = await exec('sh', ['-c', 'command -v "$1"', 'sh', cmd], { allowFail: true })
  return r.code === 0 ? r.stdout.trim() : null
}
