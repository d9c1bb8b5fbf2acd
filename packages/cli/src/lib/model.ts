import { Flags } from '@oclif/core'
import { loadInventory, type Model } from '@hafw/inventory'
import { applyOverlay, labStatus, readOverlay, readOverlayFile } from '@hafw/lab'

/** `--overlay FILE` for every command that reaches nodes over SSH. */
export const overlayFlag = Flags.string({
  description: 'apply this SSH overlay (as `hafw lab up` writes) instead of the running lab\'s',
  helpValue: 'FILE',
})

/**
 * Load an inventory for a command that talks to its nodes. With --overlay FILE, or when the
 * inventory's site has a running lab on this machine, the lab's SSH overlay replaces each
 * node's SSH target (management address, lab key, pinned host key); stderr says so, because
 * the same inventory would otherwise reach production addresses.
 */
export async function loadModelForCli(file: string, opts: { overlay?: string } = {}): Promise<Model> {
  const model = await loadInventory(file)
  if (opts.overlay) {
    const o = await readOverlayFile(opts.overlay)
    process.stderr.write(`using SSH overlay ${opts.overlay} (site ${o.site})\n`)
    return applyOverlay(model, o)
  }
  const o = await readOverlay(model.site)
  if (!o) return model
  const [status] = await labStatus(model.site)
  if (!status || (status.state !== 'up' && status.state !== 'degraded')) {
    process.stderr.write(`lab of site ${model.site} is not running (${status?.state ?? 'no state'}); not applying its overlay\n`)
    return model
  }
  const down = status.hosts.filter((h) => !h.running).map((h) => h.name)
  process.stderr.write(`site ${model.site} has a running lab: reaching its nodes through the lab overlay ${status.overlay}${down.length ? ` (stopped: ${down.join(', ')})` : ''}\n`)
  return applyOverlay(model, o)
}

/** Every command that connects to nodes takes the same host-key flag. */
export const acceptNewFlag = Flags.boolean({
  description: 'record unknown host keys (hashed) in known_hosts instead of refusing them; changed keys are always refused',
})
