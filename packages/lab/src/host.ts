import { existsSync } from 'node:fs'
import { readFile, readdir, rm, rmdir } from 'node:fs/promises'
import { resolve } from 'node:path'
import { exec, HafwError, sleep, which } from '@hafw/core'

/*
 * What the lab needs from this machine: root, a few programs, and careful process handling
 * (we only ever signal a PID we started, checked against its start time so a recycled PID of
 * somebody else's process is never touched).
 */

/** Program -> Debian package that provides it. */
const TOOLS: Record<string, string> = {
  'systemd-nspawn': 'systemd-container',
  debootstrap: 'debootstrap',
  ip: 'iproute2',
  nsenter: 'util-linux',
  sysctl: 'procps',
  ssh: 'openssh-client',
  'ssh-keygen': 'openssh-client',
}

export function requireRoot(what: string): void {
  if (process.getuid?.() !== 0) throw new HafwError(`${what} needs root: it creates network namespaces and boots containers (run it with sudo)`)
}

/** Fails with the apt-get line that installs every missing program. */
export async function requireTools(names: readonly string[]): Promise<void> {
  const missing: string[] = []
  for (const n of names) if (!(await which(n))) missing.push(n)
  if (!missing.length) return
  const pkgs = [...new Set(missing.map((m) => TOOLS[m] ?? m))]
  throw new HafwError(`missing program${missing.length > 1 ? 's' : ''}: ${missing.join(', ')}\ninstall with: apt-get install -y ${pkgs.join(' ')}`)
}

export const LAB_TOOLS = Object.keys(TOOLS)

/** A process we started, identified by PID and kernel start time (field 22 of /proc/PID/stat). */
export interface ProcRef {
  pid: number
  start: string
}

export async function procStart(pid: number): Promise<string | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
    // comm may contain spaces and parentheses: fields start after the last ")". A zombie
    // (state Z) has ended; our PID 1 here may take its time to reap it.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return f[0] === 'Z' || f[0] === 'X' ? null : (f[19] ?? null)
  } catch {
    return null
  }
}

export async function procRef(pid: number): Promise<ProcRef | null> {
  const start = await procStart(pid)
  return start === null ? null : { pid, start }
}

export async function alive(p: ProcRef | undefined | null): Promise<boolean> {
  if (!p) return false
  return (await procStart(p.pid)) === p.start
}


/** Signal a process of ours and wait for it to go; SIGKILL after graceMs. Returns how it ended. */
export async function stopProc(p: ProcRef, graceMs: number, signal: NodeJS.Signals = 'SIGTERM'): Promise<'gone' | 'stopped' | 'killed'> {
  if (!(await alive(p))) return 'gone'
  try {
    process.kill(p.pid, signal)
  } catch {
    return 'gone'
  }
  const until = Date.now() + graceMs
  while (Date.now() < until) {
    if (!(await alive(p))) return 'stopped'
    await sleep(100)
  }
  if (await alive(p)) {
    try {
      process.kill(p.pid, 'SIGKILL')
    } catch {
      /* ended meanwhile */
    }
    for (let i = 0; i < 50 && (await alive(p)); i++) await sleep(100)
  }
  return 'killed'
}

/** Direct children of a process (from /proc/PID/task/TID/children). */
export async function childrenOf(pid: number): Promise<number[]> {
  const out: number[] = []
  try {
    for (const tid of await readdir(`/proc/${pid}/task`)) {
      const s = await readFile(`/proc/${pid}/task/${tid}/children`, 'utf8').catch(() => '')
      for (const c of s.trim().split(/\s+/)) if (c) out.push(Number(c))
    }
  } catch {
    /* gone */
  }
  return out
}

export async function comm(pid: number): Promise<string> {
  return (await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '')).trim()
}

/**
 * RSS per PID namespace, in KiB: the sum over every process whose /proc/PID/ns/pid is the given
 * one. One pass over /proc serves every host of a lab.
 */
export async function rssByPidNs(): Promise<Map<string, number>> {
  const out = new Map<string, number>()
  const { readlink } = await import('node:fs/promises')
  for (const d of await readdir('/proc')) {
    if (!/^\d+$/.test(d)) continue
    try {
      const ns = await readlink(`/proc/${d}/ns/pid`)
      const status = await readFile(`/proc/${d}/status`, 'utf8')
      const m = /^VmRSS:\s+(\d+)/m.exec(status)
      if (m) out.set(ns, (out.get(ns) ?? 0) + Number(m[1]))
    } catch {
      /* exited, or a kernel thread */
    }
  }
  return out
}

export { sleep }

/** Mount points at or below dir in this mount namespace, deepest first. */
export async function mountsUnder(dir: string): Promise<string[]> {
  const d = resolve(dir)
  const info = await readFile('/proc/self/mountinfo', 'utf8')
  // Field 5 is the mount point, with spaces and the like octal-escaped.
  const points = info.split('\n').map((l) => l.split(' ')[4]).filter((p): p is string => !!p).map((p) => p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
  return points.filter((p) => p === d || p.startsWith(d + '/')).sort((a, b) => b.length - a.length)
}

/**
 * rm -rf that never follows a mount (debootstrap killed mid-run leaves /proc, /sys or bind
 * mounts of /dev in its target): unmount what is below first, refuse if anything stays.
 */
export async function removeTree(dir: string): Promise<void> {
  for (const m of await mountsUnder(dir)) await exec('umount', ['-l', m], { allowFail: true })
  const left = await mountsUnder(dir)
  if (left.length) throw new HafwError(`not removing ${dir}: still mounted there: ${left.join(', ')}`)
  await rm(dir, { recursive: true, force: true })
}

/*
 * The systemd of each lab host needs a cgroup tree of its own. systemd-nspawn puts its payload
 * in "payload" under the cgroup it was started in; started by hafw from one cgroup, every host
 * got the same one (/payload), so a hundred systemds made and removed the same
 * system.slice/<unit> directories, and a unit could fail to start with 219/CGROUP ("Failed to
 * attach to cgroup ...: No such file or directory") when another host's systemd removed the
 * directory between its mkdir and the attach: a few per hundred hosts started at once, under
 * load. Each host now starts in a cgroup of its own (legacy layout, LAB.md), when this machine
 * has a name=systemd hierarchy.
 */
const HIERARCHIES = ['/sys/fs/cgroup/systemd', '/sys/fs/cgroup/unified']
export const LAB_CGROUPS = HIERARCHIES.map((h) => `${h}/hafw-lab`)

/**
 * Where host `netns` runs: its cgroup in the name=systemd hierarchy and in the unified one
 * beside it (nspawn takes its own cgroup path from the unified one, and makes payload and
 * supervisor at that path in both); none on a machine without a name=systemd hierarchy.
 */
export function hostCgroups(netns: string): string[] {
  if (!existsSync(`${HIERARCHIES[0]}/cgroup.procs`)) return []
  return HIERARCHIES.filter((h) => existsSync(`${h}/cgroup.procs`)).map((h) => `${h}/hafw-lab/${netns}`)
}

/**
 * Remove a cgroup and everything under it (deepest first: cgroups are removed by rmdir); true
 * when gone. A process that just exited may keep its cgroup busy a moment: tried for `waitMs`.
 */
export async function removeCgroup(dir: string, waitMs = 2000): Promise<boolean> {
  const rmTree = async (d: string): Promise<void> => {
    for (const k of await readdir(d, { withFileTypes: true }).catch(() => [])) if (k.isDirectory()) await rmTree(`${d}/${k.name}`)
    await rmdir(d).catch(() => undefined)
  }
  for (const until = Date.now() + waitMs; ; await sleep(50)) {
    await rmTree(dir)
    if (!existsSync(dir)) return true
    if (Date.now() > until) return false
  }
}
