import { loadInventory, type Model } from '@hafw/inventory'
import { applyOverlay, readOverlay, readOverlayFile } from './overlay.js'
import { labStatus } from './status.js'

/**
 * Load an inventory for work that talks to its nodes. With an overlay file, or when the
 * inventory's site has a running lab on this machine, the lab's SSH overlay replaces each node's
 * SSH target (management address, lab key, pinned host key). `note` says which, because the same
 * inventory would otherwise reach production addresses.
 */
export async function loadInventoryForLab(file: string, opts: { overlay?: string } = {}): Promise<{ model: Model; note: string | null }> {
  const model = await loadInventory(file)
  if (opts.overlay) {
    const o = await readOverlayFile(opts.overlay)
    return { model: applyOverlay(model, o), note: `using SSH overlay ${opts.overlay} (site ${o.site})` }
  }
  const o = await readOverlay(model.site)
  if (!o) return { model, note: null }
  const [status] = await labStatus(model.site, { memory: false })
  if (!status || (status.state !== 'up' && status.state !== 'degraded')) {
    return { model, note: `lab of site ${model.site} is not running (${status?.state ?? 'no state'}); not applying its overlay` }
  }
  const down = status.hosts.filter((h) => !h.running).map((h) => h.name)
  return {
    model: applyOverlay(model, o),
    note: `site ${model.site} has a running lab: reaching its nodes through the lab overlay ${status.overlay}${down.length ? ` (stopped: ${down.join(', ')})` : ''}`,
  }
}
