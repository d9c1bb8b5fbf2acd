import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { removeTree, requireTools } from './host.js'
import { cacheDir, exec, HafwError, reporter, throwIfAborted, type Progress } from '@hafw/core'

/*
 * The lab's root filesystem: one debootstrapped Debian, built once and cached under
 * cacheDir()/lab/rootfs-<key>, where the key hashes everything that goes into it. Every host
 * boots it read-only through an overlay, so the cache is never written after it is built.
 */

export const SUITE = 'bookworm'
export const PACKAGES = [
  'systemd', 'systemd-sysv', 'dbus', 'iproute2', 'openssh-server', 'keepalived', 'conntrackd',
  'conntrack', 'iptables', 'nftables', 'iputils-ping', 'procps',
] as const
/** Bump when configureImage() changes, so old caches are not reused. */
const IMAGE_VERSION = 1

export function rootfsKey(packages: readonly string[] = PACKAGES): string {
  const spec = { suite: SUITE, variant: 'minbase', arch: process.arch, packages: [...packages].sort(), image: IMAGE_VERSION }
  return createHash('sha256').update(JSON.stringify(spec)).digest('hex').slice(0, 12)
}

export function rootfsPath(packages: readonly string[] = PACKAGES): string {
  return join(cacheDir(), 'lab', `rootfs-${rootfsKey(packages)}`)
}

/**
 * The Debian mirror apt already uses (HAFW_LAB_MIRROR overrides): the first URI serving the
 * suite itself, from deb822 *.sources or one-line *.list files.
 */
export async function aptMirror(): Promise<string> {
  if (process.env.HAFW_LAB_MIRROR) return process.env.HAFW_LAB_MIRROR
  const files: string[] = []
  const dir = '/etc/apt/sources.list.d'
  if (existsSync(dir)) for (const f of (await readdir(dir)).sort()) if (/\.(sources|list)$/.test(f)) files.push(join(dir, f))
  if (existsSync('/etc/apt/sources.list')) files.push('/etc/apt/sources.list')
  for (const f of files) {
    const text = await readFile(f, 'utf8')
    if (f.endsWith('.sources')) {
      for (const stanza of text.split(/\n\s*\n/)) {
        const field = (k: string) => new RegExp(`^${k}:\\s*(.+)$`, 'mi').exec(stanza)?.[1]?.trim().split(/\s+/) ?? []
        if (field('Enabled')[0] === 'no' || !field('Types').includes('deb')) continue
        if (field('Suites').includes(SUITE)) { const u = field('URIs')[0]; if (u) return u }
      }
    } else {
      for (const line of text.split('\n')) {
        const m = /^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)/.exec(line)
        if (m && m[2] === SUITE) return m[1]!
      }
    }
  }
  return 'http://deb.debian.org/debian'
}

/** Once, in the fresh tree: what every lab host needs and a container must not try. */
async function configureImage(root: string): Promise<void> {
  const w = (p: string, s: string) => writeFile(join(root, p), s)
  // Host keys are made per host by `lab up`; the ones debootstrap generated would be shared.
  for (const f of await readdir(join(root, 'etc/ssh'))) if (f.startsWith('ssh_host_')) await rm(join(root, 'etc/ssh', f))
  await mkdir(join(root, 'etc/ssh/sshd_config.d'), { recursive: true })
  await w('etc/ssh/sshd_config.d/hafw-lab.conf', [
    '# hafw lab: key-only root login; the host key is generated per host by `hafw lab up`.',
    'HostKey /etc/ssh/ssh_host_ed25519_key',
    'PermitRootLogin prohibit-password',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UseDNS no',
    '',
  ].join('\n'))
  // machine-id is written per host; an empty one here would make systemd treat boots as first boots.
  await rm(join(root, 'etc/machine-id'), { force: true })
  await rm(join(root, 'var/lib/dbus/machine-id'), { force: true })
  // Installed, not configured: hafw apply configures and starts them. conntrackd would start
  // with Debian's sample config and fail; keepalived skips itself without a config.
  await exec('systemctl', ['--root', root, 'disable', 'conntrackd.service'], { allowFail: true })
  // Units that cannot work in a container or only slow the boot down.
  await exec('systemctl', ['--root', root, 'mask', 'systemd-timesyncd.service', 'apt-daily.timer', 'apt-daily-upgrade.timer', 'e2scrub_all.timer', 'fstrim.timer', 'console-getty.service'], { allowFail: true })
  await rm(join(root, 'var/cache/apt/archives'), { recursive: true, force: true })
  await mkdir(join(root, 'var/cache/apt/archives/partial'), { recursive: true })
}

/**
 * Run a program in a process group of its own, so cancelling kills it with everything it
 * started (debootstrap runs dpkg in a chroot; killing only debootstrap would leave them).
 */
function runGroup(cmd: string, args: string[], signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    const keep = (d: Buffer) => void (out = (out + d.toString('utf8')).slice(-4000))
    child.stdout.on('data', keep)
    child.stderr.on('data', keep)
    const kill = () => {
      try {
        process.kill(-child.pid!, 'SIGKILL')
      } catch {
        /* already gone */
      }
    }
    signal.addEventListener('abort', kill, { once: true })
    child.on('error', (e) => reject(new HafwError(`${cmd}: ${e.message}`)))
    child.on('close', (code) => {
      signal.removeEventListener('abort', kill)
      if (signal.aborted) return reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'))
      if (code !== 0) return reject(new HafwError(`${cmd} exited ${code}:\n${out.trim().split('\n').slice(-8).join('\n')}`))
      resolve()
    })
  })
}

/**
 * The cached root filesystem, built when missing. The build goes to a temporary directory next
 * to the cache and is renamed into place, so an interrupted build never leaves a half cache.
 */
export async function ensureRootfs(progress: Progress, signal: AbortSignal, packages: readonly string[] = PACKAGES): Promise<{ path: string; built: boolean; ms: number }> {
  const log = reporter(progress, 'rootfs')
  const path = rootfsPath(packages)
  if (existsSync(join(path, '.hafw-rootfs.json'))) return { path, built: false, ms: 0 }
  await requireTools(['debootstrap'])
  const base = join(cacheDir(), 'lab')
  await mkdir(base, { recursive: true })
  // Builds left by a killed process: their owner is gone.
  for (const f of await readdir(base)) {
    const m = /^\.build-.*-(\d+)$/.exec(f)
    if (m && !existsSync(`/proc/${m[1]}`)) await removeTree(join(base, f))
  }
  const tmp = join(base, `.build-${rootfsKey(packages)}-${process.pid}`)
  await removeTree(tmp)
  const t0 = Date.now()
  const mirror = await aptMirror()
  log.info(`building the lab root filesystem (debootstrap ${SUITE} from ${mirror}; once, cached in ${path})`)
  // debootstrap is quiet for a minute or more: say it is still going.
  const beat = setInterval(() => log.info(`still building the root filesystem (${Math.round((Date.now() - t0) / 1000)} s)`), 15_000)
  try {
    await runGroup('debootstrap', ['--variant=minbase', `--include=${packages.join(',')}`, SUITE, tmp, mirror], signal)
    throwIfAborted(signal)
    await configureImage(tmp)
    await writeFile(join(tmp, '.hafw-rootfs.json'), JSON.stringify({ suite: SUITE, mirror, packages, image: IMAGE_VERSION, built: new Date().toISOString() }, null, 2) + '\n')
    try {
      await rename(tmp, path)
    } catch (e) {
      // Another build finished first: use it.
      if (!existsSync(join(path, '.hafw-rootfs.json'))) throw e
      await removeTree(tmp)
    }
  } catch (e) {
    await removeTree(tmp)
    if (e instanceof HafwError && !signal.aborted) throw new HafwError(`building the lab root filesystem failed: ${e.message}`, { cause: e })
    throw e
  } finally {
    clearInterval(beat)
  }
  const ms = Date.now() - t0
  log.info(`root filesystem ready in ${(ms / 1000).toFixed(1)} s`)
  return { path, built: true, ms }
}
