import { existsSync } from 'node:fs'
import { readdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { HafwError, stateDir } from '@hafw/core'
import type { ProcRef } from './host.js'
import type { HostPlan, ProbePlan } from './plan.js'

/*
 * stateDir()/lab/<site>/state.json lists everything a lab made, written before each thing is
 * made, so `lab down` (or a failed `lab up`) removes exactly that and nothing else.
 */

export interface HostState extends HostPlan {
  upper: string
  log: string
  /** the systemd-nspawn process; SIGTERM is a clean poweroff */
  nspawn?: ProcRef
  /** PID 1 of the container, for nsenter */
  init?: ProcRef
  /** the host's own cgroups (host.ts hostCgroups), removed by lab down */
  cgroups?: string[]
  hostKey?: { public: string; fingerprint: string }
  bootMs?: number
}

export interface ProbeState extends ProbePlan {
  log: string
  proc?: ProcRef
}

export interface LabState {
  version: 1
  site: string
  /** the inventory file `lab up` read */
  inventory: string
  phase: 'starting' | 'up' | 'failed'
  created: string
  rootfs: string
  labNetns: string
  mgmtIndex: number
  mgmtSubnet: string
  rootPort: string
  rootAddress: string
  bridges: { name: string; segment: string }[]
  /** network namespaces made, in creation order (the lab's own first) */
  netns: string[]
  /** links made in the root namespace */
  rootLinks: string[]
  hosts: HostState[]
  probes: ProbeState[]
  identity: string
  knownHosts: string
  overlay: string
}

export function labRoot(): string {
  return join(stateDir(), 'lab')
}
export function siteDir(site: string): string {
  return join(labRoot(), site)
}
export function statePath(site: string): string {
  return join(siteDir(site), 'state.json')
}
export function overlayPath(site: string): string {
  return join(siteDir(site), 'overlay.json')
}

export async function readState(site: string): Promise<LabState | null> {
  const p = statePath(site)
  let text: string
  try {
    text = await readFile(p, 'utf8')
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw e
  }
  try {
    return JSON.parse(text) as LabState
  } catch (e) {
    throw new HafwError(`${p}: unreadable lab state (${(e as Error).message}); remove it by hand after checking \`ip netns\``)
  }
}

/** Atomic replace: a crash mid-write never leaves half a state file. */
export async function writeState(s: LabState): Promise<void> {
  const p = statePath(s.site)
  await writeFile(`${p}.tmp`, JSON.stringify(s, null, 2) + '\n')
  await rename(`${p}.tmp`, p)
}

/** Sites with lab state on this machine. */
export async function labSites(): Promise<string[]> {
  if (!existsSync(labRoot())) return []
  const out: string[] = []
  for (const d of (await readdir(labRoot(), { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
    if (d.isDirectory() && existsSync(statePath(d.name))) out.push(d.name)
  }
  return out
}
