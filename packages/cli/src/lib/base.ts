import { Command, Flags, Errors } from '@oclif/core'
import { isHafwError, InvalidInputError, stderrProgress, type Progress } from '@hafw/core'

/**
 * Every command: `--json` for machines, logs and progress on stderr, user errors as one clear
 * message and an exit code, never a stack trace (unless HAFW_DEBUG=1).
 */
export abstract class BaseCommand extends Command {
  static override enableJsonFlag = true
  static override baseFlags = {
    verbose: Flags.boolean({ char: 'v', description: 'log debug detail to stderr', helpGroup: 'GLOBAL' }),
  }

  /** Progress to stderr; quiet under --json unless --verbose. */
  protected progress(verbose = false): Progress {
    const json = this.jsonEnabled()
    const p = stderrProgress(verbose ? 'debug' : 'info')
    return json && !verbose ? (e) => (e.level === 'warn' || e.level === 'error' ? p(e) : undefined) : p
  }

  /** Print a result's text (unless --json) and exit 1 when it failed; --json prints it either way. */
  protected async finish<T extends { ok: boolean }>(result: T, text: string): Promise<T> {
    if (!this.jsonEnabled()) this.log(text)
    if (!result.ok) {
      // a large result is bigger than a pipe's buffer: flush it before exiting
      if (this.jsonEnabled()) await new Promise<void>((res) => process.stdout.write(JSON.stringify(result, null, 2) + '\n', () => res()))
      this.exit(1)
    }
    return result
  }

  protected override async catch(err: Error & { exitCode?: number; oclif?: { exit?: number } }): Promise<unknown> {
    if (process.env.HAFW_DEBUG === '1') process.stderr.write(`${err.stack}\n`)
    if (isHafwError(err)) {
      if (this.jsonEnabled()) {
        const body: Record<string, unknown> = { error: { message: err.message } }
        if (err instanceof InvalidInputError) body.error = { message: err.message.split('\n')[0]!.replace(/:$/, ''), issues: err.issues }
        this.logJson(body)
      } else {
        process.stderr.write(`error: ${err.message}\n`)
      }
      this.exit(err.exitCode)
    }
    if (err instanceof Errors.ExitError) throw err
    return super.catch(err)
  }
}
