import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { HafwError } from '@hafw/core'
import type { Model, SshTarget } from '@hafw/inventory'
import { overlayPath } from './state.js'

/*
 * The SSH overlay keeps the inventory production-shaped: `lab up` writes, per node, how to
 * reach it in the lab (management address, the lab's key, the pinned host key); later commands
 * apply it to the model instead of editing the inventory.
 */

export interface OverlayEntry {
  host: string
  port: number
  user: string
  identity: string
  known_hosts: string
  /** "SHA256:..." as OpenSSH prints it */
  host_key: string
}

export interface Overlay {
  version: 1
  site: string
  inventory: string
  created: string
  nodes: Record<string, OverlayEntry>
}

/** OpenSSH's SHA256 fingerprint of a public key line ("ssh-ed25519 AAAA... comment"). */
export function fingerprint(publicKeyLine: string): string {
  const blob = publicKeyLine.trim().split(/\s+/)[1]
  if (!blob) throw new HafwError(`not an OpenSSH public key: ${publicKeyLine.slice(0, 40)}`)
  return 'SHA256:' + createHash('sha256').update(Buffer.from(blob, 'base64')).digest('base64').replace(/=+$/, '')
}

export async function readOverlayFile(file: string): Promise<Overlay> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (e) {
    throw new HafwError(`${file}: cannot read the overlay (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`)
  }
  let o: Overlay
  try {
    o = JSON.parse(text) as Overlay
  } catch (e) {
    throw new HafwError(`${file}: not a lab overlay (${(e as Error).message})`)
  }
  if (o?.version !== 1 || typeof o.site !== 'string' || typeof o.nodes !== 'object' || o.nodes === null) throw new HafwError(`${file}: not a lab overlay (expected version 1 with site and nodes)`)
  return o
}

/** The overlay of a site's running lab, or null when the site has no lab. */
export async function readOverlay(site: string): Promise<Overlay | null> {
  const file = overlayPath(site)
  return existsSync(file) ? readOverlayFile(file) : null
}

function overlaid(t: SshTarget, e: OverlayEntry): SshTarget {
  const { jump: _jump, ...rest } = t
  return { ...rest, host: e.host, port: e.port, user: e.user, identity: e.identity, known_hosts: e.known_hosts, host_key: e.host_key, sudo: false }
}

/**
 * The model with every node's and host's SSH target replaced by the overlay's. Addresses,
 * interfaces and everything rendered stay as the inventory says.
 */
export function applyOverlay(model: Model, overlay: Overlay): Model {
  if (overlay.site !== model.site) throw new HafwError(`the overlay is for site "${overlay.site}" but ${model.source} is site "${model.site}"`)
  const entry = (name: string) => {
    const e = overlay.nodes[name]
    if (!e) throw new HafwError(`the lab overlay of site "${overlay.site}" has no host "${name}": ${model.source} changed since \`hafw lab up\`; run \`hafw lab down ${overlay.site}\` and \`hafw lab up ${model.source}\``)
    return e
  }
  return {
    ...model,
    pairs: model.pairs.map((p) => ({
      ...p,
      nodes: p.nodes.map((n) => ({ ...n, ssh: overlaid(n.ssh, entry(n.name)) })) as typeof p.nodes,
    })),
    hosts: model.hosts.map((h) => ({ ...h, ssh: overlaid(h.ssh, entry(h.name)) })),
  }
}

/** OpenSSH client arguments that reach a lab host exactly as the overlay pins it. */
export function sshArgv(e: OverlayEntry, command: readonly string[] = [], extra: readonly string[] = []): string[] {
  return [
    '-i', e.identity,
    '-p', String(e.port),
    '-o', 'IdentitiesOnly=yes',
    '-o', `UserKnownHostsFile=${e.known_hosts}`,
    '-o', 'GlobalKnownHostsFile=/dev/null',
    '-o', 'StrictHostKeyChecking=yes',
    '-o', 'BatchMode=yes',
    '-o', 'ConnectTimeout=10',
    '-o', 'LogLevel=ERROR',
    ...extra,
    `${e.user}@${e.host}`,
    ...(command.length ? ['--', ...command] : []),
  ]
}
