import { createHash } from 'node:crypto'
import { chmod, mkdir, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { HafwError } from '@hafw/core'
import type { Model, Profile } from '@hafw/inventory'
import { renderTemplate } from './engine.js'
import { SCRIPTS } from './layout.js'
import { hostView, pairNodeView, type Kind, type NodeView } from './view.js'

export type Service = 'systemd' | 'sysctl' | 'routing' | 'firewall' | 'conntrackd' | 'keepalived'
export type Action = 'reload' | 'restart' | 'run' | 'none'
/** Which real tool proves the file (see @hafw/check). */
export type CheckKind = 'keepalived' | 'conntrackd' | 'iptables' | 'ip6tables' | 'nftables' | 'script' | 'unit' | 'sysctl' | 'modules' | 'rt_tables' | 'rule-if' | 'route-if'

export interface RenderedFile {
  /** absolute path on the node */
  path: string
  /** octal, e.g. "0644" */
  mode: string
  owner: string
  content: string
  sha256: string
  service: Service
  /** what a change to this file needs: the service's reload, restart, run, or nothing */
  action: Action
  template: string
  check: CheckKind
}

export interface RenderedNode {
  node: string
  pair?: string
  kind: Kind
  profile: Profile
  site: string
  files: RenderedFile[]
}

export interface RenderOptions {
  pair?: string
  node?: string
  /** render with this profile instead of the inventory's */
  profile?: Profile
}

/** The order apply goes through services; the commands each (service, action) means. */
export const SERVICE_ORDER: Service[] = ['systemd', 'firewall', 'sysctl', 'routing', 'conntrackd', 'keepalived']

export const SERVICE_COMMANDS: Record<Service, Partial<Record<Action, string[]>>> = {
  systemd: { reload: ['systemctl', 'daemon-reload'] },
  firewall: { run: [SCRIPTS.firewall] },
  sysctl: { run: ['sysctl', '-q', '-p', '/etc/sysctl.d/90-hafw.conf'] },
  routing: { run: [SCRIPTS.routing] },
  conntrackd: { restart: ['systemctl', 'restart', 'conntrackd.service'] },
  keepalived: { reload: ['systemctl', 'reload', 'keepalived.service'], restart: ['systemctl', 'restart', 'keepalived.service'] },
}

interface Spec {
  template: string
  path: string
  mode?: string
  service: Service
  action: Action
  check: CheckKind
  item?: object
}

/** Which files a node gets. */
function specs(v: NodeView): Spec[] {
  const L = v.layout
  const out: Spec[] = []
  const unit = (name: string) => `${L.units}/${name}`
  if (v.keepalived) {
    out.push({ template: 'keepalived/keepalived.conf.hbs', path: L.keepalived, service: 'keepalived', action: 'reload', check: 'keepalived' })
    out.push({ template: 'keepalived/hafw-notify.sh.hbs', path: SCRIPTS.notify, mode: '0755', service: 'keepalived', action: 'none', check: 'script' })
    out.push({ template: 'systemd/keepalived.dropin.conf.hbs', path: unit('keepalived.service.d/hafw.conf'), service: 'systemd', action: 'reload', check: 'unit' })
  }
  if (v.conntrackd) {
    out.push({ template: 'conntrackd/conntrackd.conf.hbs', path: L.conntrackd, service: 'conntrackd', action: 'restart', check: 'conntrackd' })
    out.push({ template: 'systemd/conntrackd.dropin.conf.hbs', path: unit('conntrackd.service.d/hafw.conf'), service: 'systemd', action: 'reload', check: 'unit' })
  }
  const fw = v.firewall
  // iptables-restore and ip6tables-restore take one family each: one template, a file per family.
  const [v4, v6] = fw.families
  if (fw.iptables) {
    out.push({ template: 'firewall/iptables.rules.hbs', path: fw.rules_path, mode: '0600', service: 'firewall', action: 'run', check: 'iptables', item: v4 })
    if (fw.rules6_path && v6) out.push({ template: 'firewall/iptables.rules.hbs', path: fw.rules6_path, mode: '0600', service: 'firewall', action: 'run', check: 'ip6tables', item: v6 })
  } else out.push({ template: 'firewall/nftables.nft.hbs', path: fw.rules_path, mode: '0600', service: 'firewall', action: 'run', check: 'nftables' })
  out.push(
    { template: 'firewall/hafw-firewall.sh.hbs', path: SCRIPTS.firewall, mode: '0755', service: 'firewall', action: 'run', check: 'script' },
    { template: 'systemd/hafw-firewall.service.hbs', path: unit('hafw-firewall.service'), service: 'systemd', action: 'reload', check: 'unit' },
  )
  if (v.sysctl.entries.length) out.push({ template: 'sysctl/sysctl.conf.hbs', path: L.sysctl, service: 'sysctl', action: 'run', check: 'sysctl' })
  if (v.sysctl.modules.length) out.push({ template: 'sysctl/modules-load.conf.hbs', path: L.modules, service: 'sysctl', action: 'none', check: 'modules' })
  const r = v.routing
  if (r) {
    out.push({ template: 'routing/hafw-routing.sh.hbs', path: SCRIPTS.routing, mode: '0755', service: 'routing', action: 'run', check: 'script' })
    if (L.routingUnit) out.push({ template: 'systemd/hafw-routing.service.hbs', path: unit('hafw-routing.service'), service: 'systemd', action: 'reload', check: 'unit' })
    if (r.pbr.length) out.push({ template: 'routing/rt_tables.hbs', path: L.rtTables, service: 'routing', action: 'none', check: 'rt_tables' })
    if (L.networkScripts) {
      for (const f of r.rule_files) out.push({ template: 'routing/rule-if.hbs', path: `${L.networkScripts}/${f.name}`, service: 'routing', action: 'none', check: 'rule-if', item: f })
      for (const f of r.route_files) out.push({ template: 'routing/route-if.hbs', path: `${L.networkScripts}/${f.name}`, service: 'routing', action: 'none', check: 'route-if', item: f })
    }
  }
  return out
}

const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex')

function renderView(v: NodeView): RenderedNode {
  const files = specs(v).map((s): RenderedFile => {
    const content = renderTemplate(s.template, s.item ? { ...v, item: s.item } : v)
    return { path: s.path, mode: s.mode ?? '0644', owner: 'root:root', content, sha256: sha256(content), service: s.service, action: s.action, template: s.template, check: s.check }
  })
  const seen = new Set<string>()
  for (const f of files) {
    if (seen.has(f.path)) throw new HafwError(`internal: two files render to ${f.path} on ${v.node}`)
    seen.add(f.path)
  }
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
  return { node: v.node, ...(v.pair ? { pair: v.pair } : {}), kind: v.kind, profile: v.profile, site: v.site, files }
}

/**
 * Render every node of the inventory (pairs' nodes and hosts), or those selected by pair/node.
 * Pure and deterministic: the same model gives byte-identical files.
 */
export function renderInventory(model: Model, opts: RenderOptions = {}): RenderedNode[] {
  const out: RenderedNode[] = []
  if (opts.pair && !model.pairs.some((p) => p.name === opts.pair)) {
    throw new HafwError(`${model.source}: no pair named "${opts.pair}" (pairs: ${model.pairs.map((p) => p.name).join(', ') || 'none'})`)
  }
  for (const p of model.pairs) {
    if (opts.pair && p.name !== opts.pair) continue
    for (const n of p.nodes) if (!opts.node || n.name === opts.node) out.push(renderView(pairNodeView(model, p, n, opts.profile)))
  }
  if (!opts.pair) for (const h of model.hosts) if (!opts.node || h.name === opts.node) out.push(renderView(hostView(model, h, opts.profile)))
  if (opts.node && !out.length) {
    const names = [...model.pairs.flatMap((p) => p.nodes.map((n) => n.name)), ...model.hosts.map((h) => h.name)]
    throw new HafwError(`${model.source}: no node named "${opts.node}"${opts.pair ? ` in pair ${opts.pair}` : ''} (nodes: ${names.join(', ')})`)
  }
  return out
}

export interface Manifest {
  version: 1
  site: string
  node: string
  pair: string | null
  kind: Kind
  profile: Profile
  files: Omit<RenderedFile, 'content'>[]
  /** services touched by these files, in apply order, with the commands their actions mean */
  services: { service: Service; actions: Action[]; commands: Partial<Record<Action, string[]>> }[]
  /** units to enable so the configuration survives a reboot */
  enable: string[]
}

export function manifest(n: RenderedNode): Manifest {
  const services = SERVICE_ORDER.filter((s) => n.files.some((f) => f.service === s)).map((service) => ({
    service,
    actions: [...new Set(n.files.filter((f) => f.service === service).map((f) => f.action))].filter((a) => a !== 'none').sort(),
    commands: SERVICE_COMMANDS[service],
  }))
  const has = (p: string) => n.files.some((f) => f.path.endsWith(p))
  const enable = [
    'hafw-firewall.service',
    ...(has('/hafw-routing.service') ? ['hafw-routing.service'] : []),
    ...(has('/conntrackd.conf') ? ['conntrackd.service'] : []),
    ...(has('/keepalived.conf') ? ['keepalived.service'] : []),
  ]
  return {
    version: 1,
    site: n.site,
    node: n.node,
    pair: n.pair ?? null,
    kind: n.kind,
    profile: n.profile,
    files: n.files.map(({ content: _c, ...f }) => f),
    services,
    enable,
  }
}

/** Write DIR/<node>/<path on the host> for every file, plus DIR/<node>/manifest.json. */
export async function writeRendered(nodes: RenderedNode[], dir: string): Promise<{ node: string; files: number; dir: string }[]> {
  const out: { node: string; files: number; dir: string }[] = []
  for (const n of nodes) {
    const root = join(dir, n.node)
    for (const f of n.files) {
      const target = join(root, f.path)
      await mkdir(dirname(target), { recursive: true })
      await writeFile(target, f.content)
      await chmod(target, parseInt(f.mode, 8))
    }
    await writeFile(join(root, 'manifest.json'), JSON.stringify(manifest(n), null, 2) + '\n')
    out.push({ node: n.node, files: n.files.length, dir: root })
  }
  return out
}
