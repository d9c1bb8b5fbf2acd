import { resolve } from 'node:path'
import { HafwError, InvalidInputError, type Lease, type Progress, type SourceIssue } from '@hafw/core'
import type { Model } from '@hafw/inventory'
import { loadInventoryForLab } from '@hafw/lab'
import { MODES, runDrill, type DrillInput, type DrillOptions } from './drill.js'
import type { DrillMode, DrillResult } from './types.js'

/**
 * The queue's job input for a drill (`hafw drill`, `hafw schedule add drill FILE --pair P --set
 * mode=crash`): JSON naming the inventory file and the pair, never their contents or secrets.
 */
export interface DrillJobInput extends DrillOptions {
  /** the inventory file (made absolute by the submitter) */
  file: string
  pair: string
  /** an SSH overlay file (as `hafw lab up` writes); default: the running lab's, if the site has one */
  overlay?: string
}

export const drillPairsOf = (i: DrillJobInput): string[] => [i.pair]

/** The inventory as the drill reaches it: with the given SSH overlay, or the site's running lab's. */
export async function loadForDrill(i: DrillJobInput): Promise<Model> {
  return (await loadInventoryForLab(i.file, i.overlay ? { overlay: i.overlay } : {})).model
}

export async function runDrillJob(input: DrillJobInput, progress: Progress, signal: AbortSignal, loadModel: (i: DrillJobInput) => Promise<Model> = loadForDrill, lease?: Lease): Promise<DrillResult> {
  const issues: SourceIssue[] = []
  const bad = (path: string, message: string) => issues.push({ file: '<drill job input>', line: 0, column: 0, path, message })
  if (typeof input?.file !== 'string' || !input.file) bad('file', 'expected the inventory file path')
  if (typeof input?.pair !== 'string' || !input.pair) bad('pair', 'expected a pair name')
  if (!MODES.includes(input?.mode)) bad('mode', `expected one of ${MODES.join(', ')}, found ${JSON.stringify(input?.mode)}`)
  for (const k of ['failback', 'force', 'acceptNew'] as const) if (input?.[k] !== undefined && typeof input[k] !== 'boolean') bad(k, `expected true or false, found ${JSON.stringify(input[k])}`)
  if (input?.link !== undefined && typeof input.link !== 'string') bad('link', 'expected an interface name')
  if (issues.length) throw new InvalidInputError(issues, 'invalid drill input')
  const model = await loadModel({ ...input, file: resolve(input.file) })
  const pair = model.pairs.find((p) => p.name === input.pair)
  if (!pair) throw new HafwError(`${model.source}: no pair "${input.pair}" (pairs: ${model.pairs.map((p) => p.name).join(', ') || 'none'})`)
  const { file: _f, pair: _p, overlay: _o, ...rest } = input
  const di: DrillInput = { ...rest, site: model.site, source: model.source, pair }
  return runDrill(di, progress, signal, lease)
}
