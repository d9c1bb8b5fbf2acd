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
