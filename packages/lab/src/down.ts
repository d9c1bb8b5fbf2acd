import { existsSync } from 'node:fs'
import { rmdir } from 'node:fs/promises'
import { exec, HafwError, reporter, type Progress } from '@hafw/core'
import { alive, childrenOf, comm, LAB_CGROUPS, procRef, removeCgroup, removeTree, requireRoot, stopProc } from './host.js'
import { labSites, readState, siteDir, writeState, type HostState, type LabState } from './state.js'

export interface LabDownResult {
  site: string
  /** false when the site had no lab: nothing to do */
  removed: boolean
  hosts: number
  probes: number
  ms: number
}

/** Poweroff by SIGTERM to systemd-nspawn; if that hangs, kill the container's PID 1 (and its PID namespace). */
async function stopHost(h: HostState): Promise<void> {
  if (h.nspawn && (await alive(h.nspawn))) {
    // PID 1 may not be recorded yet when `lab up` failed early: look it up before nspawn goes.
    if (!h.init) for (const c of await childrenOf(h.nspawn.pid)) if ((await comm(c)) === 'systemd') h.init = (await procRef(c)) ?? undefined
    if ((await stopProc(h.nspawn, 30_000)) === 'killed' && h.init) await stopProc(h.init, 5_000, 'SIGKILL')
  }
  if (h.init && (await alive(h.init))) await stopProc(h.init, 5_000, 'SIGKILL')
}

/**
 * Remove exactly what the state lists: probe processes, containers, root-namespace links,
 * network namespaces (which take their bridges and veths along), then the site's files.
 */
export async function teardown(state: LabState, progress: Progress): Promise<void> {
  const log = reporter(progress, state.site)
  const problems: string[] = []
  const t0 = Date.now()
  await Promise.all(state.probes.map((p) => (p.proc ? stopProc(p.proc, 3_000) : undefined)))
  await Promise.all(state.hosts.map(stopHost))
  log.debug(`processes stopped in ${Date.now() - t0} ms`)
  // Root-namespace links first: deleting them is synchronous, unlike a namespace's cleanup, so
  // an immediate `lab up` can reuse their names.
  for (const l of state.rootLinks) {
    const r = await exec('ip', ['link', 'del', 'dev', l], { allowFail: true })
    if (r.code !== 0 && !/Cannot find device/.test(r.stderr)) problems.push(`ip link del ${l}: ${r.stderr.trim()}`)
  }
  for (const ns of [...state.netns].reverse()) {
    if (!existsSync(`/run/netns/${ns}`)) continue
    const r = await exec('ip', ['netns', 'del', ns], { allowFail: true })
    if (r.code !== 0) problems.push(`ip netns del ${ns}: ${r.stderr.trim()}`)
  }
  log.debug(`links and namespaces removed in ${Date.now() - t0} ms`)
  for (const h of state.hosts) if (await alive(h.nspawn)) problems.push(`host ${h.name}: systemd-nspawn ${h.nspawn!.pid} did not stop`)
  for (const h of state.hosts) for (const cg of h.cgroups ?? []) if (!(await removeCgroup(cg))) problems.push(`host ${h.name}: cgroup ${cg} is not empty`)
  // the parents go with the last lab's hosts (another lab's keep them busy: rmdir refuses)
  for (const p of LAB_CGROUPS) await rmdir(p).catch(() => undefined)
  if (problems.length) {
    await writeState(state)
    throw new HafwError(`lab ${state.site}: could not remove everything (state kept in ${siteDir(state.site)}; run \`hafw lab down ${state.site}\` again):\n  ${problems.join('\n  ')}`)
  }
  await removeTree(siteDir(state.site))
  log.debug('removed')
}

/**
 * Take a site's lab down, or every lab when site is undefined. Idempotent: a site without a lab
 * is a success with removed=false.
 */
export async function labDown(site: string | undefined, progress: Progress): Promise<LabDownResult[]> {
  requireRoot('hafw lab down')
  const sites = site === undefined ? await labSites() : [site]
  const out: LabDownResult[] = []
  for (const s of sites) {
    const t0 = Date.now()
    const state = await readState(s)
    if (!state) {
      // Files of a `lab up` that failed before it recorded anything.
      await removeTree(siteDir(s))
      out.push({ site: s, removed: false, hosts: 0, probes: 0, ms: Date.now() - t0 })
      continue
    }
    reporter(progress, s).info(`stopping ${state.hosts.length} host(s) and ${state.probes.length} probe(s)`)
    await teardown(state, progress)
    const ms = Date.now() - t0
    reporter(progress, s).info(`lab down in ${(ms / 1000).toFixed(1)} s`)
    out.push({ site: s, removed: true, hosts: state.hosts.length, probes: state.probes.length, ms })
  }
  return out
}
