import { HafwError } from '@hafw/core'

const SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/

/**
 * Quote one argument for a POSIX shell. Remote commands are strings parsed by the node's shell,
 * so every value that comes from an inventory must pass through here (or execArgv).
 */
export function shellQuote(arg: string): string {
  if (arg.includes('\0')) throw new HafwError(`cannot pass a NUL byte in a shell argument: ${JSON.stringify(arg)}`)
  if (arg === '') return "''"
  if (SAFE.test(arg)) return arg
  return `'${arg.replace(/'/g, `'\\''`)}'`
}

/** A command line from an argv, every element quoted. */
export function shellJoin(argv: readonly string[]): string {
  if (argv.length === 0) throw new HafwError('empty command')
  return argv.map(shellQuote).join(' ')
}
