import { Flags } from '@oclif/core'
import type { Model } from '@hafw/inventory'

/** `--overlay FILE` for every command that reaches nodes over SSH. */
export const overlayFlag = Flags.string({
  description: 'apply this SSH overlay (as `hafw lab up` writes) instead of the running lab\'s',
  helpValue: 'FILE',
})

/** Load an inventory for a command that talks to its nodes (lab overlay applied); stderr says which. */
export async function loadModelForCli(file: string, opts: { overlay?: string } = {}): Promise<Model> {
  // Imported here, not at the top: every command that only declares these flags would load it.
  const { loadInventoryForLab } = await import('@hafw/lab')
  const { model, note } = await loadInventoryForLab(file, opts)
  if (note) process.stderr.write(note + '\n')
  return model
}

/** Every command that connects to nodes takes the same host-key flag. */
export const acceptNewFlag = Flags.boolean({
  description: 'record unknown host keys (hashed) in known_hosts instead of refusing them; changed keys are always refused',
})
