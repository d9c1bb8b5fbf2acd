import { randomBytes } from 'node:crypto'
import { spawn } from 'node:child_process'
import { closeSync, existsSync, mkdirSync, openSync } from 'node:fs'
import { chmod, mkdir, readdir, readFile, readlink, writeFile } from 'node:fs/promises'
import { setMaxListeners } from 'node:events'
import { connect } from 'node:net'
import { availableParallelism } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { exec, HafwError, mapLimit, reporter, throwIfAborted, type Progress } from '@hafw/core'
import { inSubnet, ipToNum, parseCidr, type Cidr, type Model } from '@hafw/inventory'
import { alive, childrenOf, comm, hostCgroups, LAB_TOOLS, procRef, removeTree, requireRoot, requireTools, sleep } from './host.js'
import { fingerprint, sshArgv, type Overlay, type OverlayEntry } from './overlay.js'
import { hostIpLines, hostSysctls, IPV6_NS_SYSCTLS, MGMT_BASE, MGMT_PREFIX, planLab, probeIpLines, type LabPlan } from './plan.js'
import { ensureRootfs } from './rootfs.js'
import { labSites, overlayPath, readState, siteDir, writeState, type HostState, type LabState, type ProbeState } from './state.js'
import { teardown } from './down.js'

/** The probe responder, shipped as plain JS next to src/ and dist/. */
const ECHO_SCRIPT = fileURLToPath(new URL('../assets/echo.mjs', import.meta.url))
const BOOT_TIMEOUT_MS = 120_000
/** hosts booting at once: enough to keep two cores busy, few enough that each gets CPU */
const BOOT_PARALLEL = Math.max(8, 4 * availableParallelism())

export interface LabUpResult {
  site: string
  inventory: string
  overlay: string
  rootfs: { path: string; built: boolean; ms: number }
  hosts: { name: string; pair?: string; mgmt: string; bootMs: number }[]
  probes: { name: string; role: 'client' | 'server'; address: string; address6?: string; ports: number[] }[]
  warnings: string[]
  ms: number
}

const ip = (args: string[], opts: { ns?: string; input?: string } = {}) =>
  exec('ip', [...(opts.ns ? ['-n', opts.ns] : []), ...args], opts.input === undefined ? {} : { input: opts.input })
/** Many `ip` commands in one process; stops at the first failure and names the line. */
const ipBatch = (lines: string[], ns?: string) => ip(['-batch', '-'], { ...(ns ? { ns } : {}), input: lines.join('\n') + '\n' })
const nsSysctl = (ns: string, settings: string[]) => exec('ip', ['netns', 'exec', ns, 'sysctl', '-qw', ...settings])

/** Whether this kernel has IPv6 at all (not booted with ipv6.disable=1). */
const HAVE_IPV6 = () => existsSync('/proc/sys/net/ipv6/conf/default')

/** The lowest management /24 no other lab (and no address in the root namespace) uses. */
async function freeMgmtIndex(): Promise<number> {
  const used = new Set<number>()
  for (const s of await labSites()) {
    const st = await readState(s).catch(() => null)
    if (st) used.add(st.mgmtIndex)
  }
  const range = parseCidr(`${MGMT_BASE}/${MGMT_PREFIX}`) as Cidr
  for (const m of (await ip(['-4', '-o', 'addr', 'show'])).stdout.matchAll(/inet (\d+\.\d+\.\d+\.\d+)\//g)) {
    if (inSubnet(m[1]!, range)) used.add(Math.floor((ipToNum(m[1]!) - range.netNum) / 256))
  }
  const links = (await ip(['-o', 'link', 'show'])).stdout
  for (let i = 0; i < 512; i++) if (!used.has(i) && !new RegExp(`^\\d+: hafw${i}[@:]`, 'm').test(links)) return i
  throw new HafwError(`no free management /24 left in ${MGMT_BASE}/${MGMT_PREFIX}`)
}

async function put(file: string, content: string, mode: number): Promise<void> {
  await writeFile(file, content)
  await chmod(file, mode)
}

/** Directories with explicit modes: the upper dir's modes win over the image's in the overlay. */
async function dirs(base: string, entries: [string, number][]): Promise<void> {
  for (const [d, mode] of entries) {
    await mkdir(join(base, d), { recursive: true })
    await chmod(join(base, d), mode)
  }
}

/** The host's own files, written into its overlay's upper directory before it boots. */
async function prepareUpper(h: HostState, authorizedKey: string): Promise<void> {
  const u = h.upper
  await dirs(u, [['.', 0o755], ['etc', 0o755], ['etc/default', 0o755], ['etc/ssh', 0o755], ['root', 0o700], ['root/.ssh', 0o700]])
  await put(join(u, 'etc/hostname'), `${h.name}\n`, 0o644)
  await put(join(u, 'etc/hosts'), `127.0.0.1\tlocalhost\n127.0.1.1\t${h.name}\n::1\tlocalhost ip6-localhost ip6-loopback\n`, 0o644)
  await put(join(u, 'etc/machine-id'), `${randomBytes(16).toString('hex')}\n`, 0o444)
  // No DNS in the lab: an empty resolver config fails lookups at once instead of timing out.
  await put(join(u, 'etc/resolv.conf'), '# hafw lab: no DNS\n', 0o644)
  await put(join(u, 'root/.ssh/authorized_keys'), authorizedKey, 0o600)
  // Without IPVS in the kernel keepalived's checker dies FATAL on virtual_server blocks and takes
  // VRRP down with it; the lab runs only the VRRP part then (LAB.md: IPVS is not in this kernel).
  if (!existsSync('/proc/net/ip_vs')) {
    await put(join(u, 'etc/default/keepalived'), '# hafw lab: this kernel has no IPVS, run only VRRP\nDAEMON_ARGS="--vrrp"\n', 0o644)
  }
  const key = join(u, 'etc/ssh/ssh_host_ed25519_key')
  await exec('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `root@${h.name}`, '-f', key])
  const pub = (await readFile(`${key}.pub`, 'utf8')).trim()
  h.hostKey = { public: pub, fingerprint: fingerprint(pub) }
}

function startHost(h: HostState, rootfs: string): void {
  const out = openSync(h.log, 'a')
  // Flags that work on this machine (LAB.md): PID 1 here is not systemd, so no registration,
  // no unit of its own, legacy cgroup layout; CAP_NET_ADMIN so keepalived can add VIPs.
  // SYSTEMD_NSPAWN_LOCK=0: every host boots the same read-only image through its own overlay.
  // its own cgroups first (hostCgroups): the shell moves itself there, then becomes systemd-nspawn
  const cgs = hostCgroups(h.netns)
  for (const cg of cgs) mkdirSync(cg, { recursive: true })
  if (cgs.length) h.cgroups = cgs
  const [cmd, pre] = cgs.length ? ['/bin/sh', ['-c', 'for d in $HAFW_CGROUPS; do echo $$ > "$d/cgroup.procs" || exit 1; done; exec systemd-nspawn "$@"', 'hafw-lab']] : ['systemd-nspawn', []]
  const child = spawn(
    cmd,
    [
      ...pre,
      '-D', rootfs, `--overlay=${rootfs}:${h.upper}:/`,
      `--network-namespace-path=/run/netns/${h.netns}`,
      '--capability=CAP_NET_ADMIN,CAP_NET_RAW',
      '--register=no', '--keep-unit', '-b', '-M', h.name,
      '--console=read-only', '--resolv-conf=off', '--timezone=off', '--link-journal=no',
    ],
    {
      detached: true,
      stdio: ['ignore', out, out],
      // API_VFS_WRITABLE=network: /proc/sys/net writable inside, so `sysctl -p` of the rendered
      // sysctls works on the node as on a real host (the netns is the host's own anyway).
      env: { ...process.env, HAFW_CGROUPS: cgs.join(' '), SYSTEMD_NSPAWN_UNIFIED_HIERARCHY: '0', SYSTEMD_NSPAWN_LOCK: '0', SYSTEMD_COLORS: '0', SYSTEMD_NSPAWN_API_VFS_WRITABLE: 'network' },
    },
  )
  child.unref()
  closeSync(out)
  if (child.pid === undefined) throw new HafwError(`host ${h.name}: systemd-nspawn did not start`)
  h.nspawn = { pid: child.pid, start: '' }
}

async function tail(file: string, lines = 8): Promise<string> {
  const t = await readFile(file, 'utf8').catch(() => '')
  return t.trim().split('\n').slice(-lines).join('\n')
}

/*
 * Each host's systemd, logind and dbus-daemon hold about 6 inotify instances, all counted
 * against root's fs.inotify.max_user_instances (128 by default): past about 20 hosts the next
 * ones stall in their boot and never start sshd. Raise it to what the machine uses now plus
 * INOTIFY_PER_HOST for each new host (never lower it; it stays raised after lab down, like a
 * loaded module: other labs may be using it).
 */
const INOTIFY_LIMIT = '/proc/sys/fs/inotify/max_user_instances'
const INOTIFY_PER_HOST = 12

async function inotifyInUse(): Promise<number> {
  let n = 0
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue
    const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[])
    for (const fd of fds) if ((await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')) === 'anon_inode:inotify') n++
  }
  return n
}

async function ensureInotify(hosts: number, log: ReturnType<typeof reporter>): Promise<void> {
  const cur = Number((await readFile(INOTIFY_LIMIT, 'utf8').catch(() => '')).trim())
  if (!Number.isFinite(cur) || cur <= 0) return
  const need = (await inotifyInUse()) + INOTIFY_PER_HOST * hosts + 32
  if (cur >= need) return
  await writeFile(INOTIFY_LIMIT, `${need}\n`)
  log.info(`raised fs.inotify.max_user_instances from ${cur} to ${need} for ${hosts} hosts (each host's systemd, logind and dbus hold about 6)`)
}

/** Whether an SSH server answers with its banner. */
function sshBanner(host: string, port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = connect({ host, port, timeout: 2000 })
    const done = (ok: boolean) => {
      s.destroy()
      res(ok)
    }
    s.once('data', (d) => done(d.toString('latin1').startsWith('SSH-')))
    s.once('error', () => done(false))
    s.once('timeout', () => done(false))
  })
}

/** Boot wait: PID 1 found, sshd answering, then `systemctl is-active ssh` over the real overlay. */
async function waitHost(h: HostState, entry: OverlayEntry, signal: AbortSignal): Promise<void> {
  const t0 = Date.now()
  const deadline = t0 + BOOT_TIMEOUT_MS
  const died = async () => new HafwError(`host ${h.name}: systemd-nspawn exited during boot; last lines of ${h.log}:\n${await tail(h.log)}`)
  while (!h.init) {
    throwIfAborted(signal)
    if (!(await alive(h.nspawn))) throw await died()
    for (const c of await childrenOf(h.nspawn!.pid)) if ((await comm(c)) === 'systemd') h.init = (await procRef(c)) ?? undefined
    if (Date.now() > deadline) throw new HafwError(`host ${h.name}: no systemd after ${BOOT_TIMEOUT_MS / 1000} s; see ${h.log}`)
    if (!h.init) await sleep(50)
  }
  while (!(await sshBanner(entry.host, entry.port))) {
    throwIfAborted(signal)
    if (!(await alive(h.nspawn))) throw await died()
    if (Date.now() > deadline) throw new HafwError(`host ${h.name}: sshd not answering on ${entry.host}:${entry.port} after ${BOOT_TIMEOUT_MS / 1000} s; last lines of ${h.log}:\n${await tail(h.log)}`)
    await sleep(200)
  }
  const r = await exec('ssh', sshArgv(entry, ['systemctl', 'is-active', 'ssh']), { allowFail: true, timeoutMs: 30_000, signal })
  if (r.stdout.trim() !== 'active') throw new HafwError(`host ${h.name}: ssh through the lab overlay failed (exit ${r.code}): ${(r.stderr || r.stdout).trim()}`)
}

function startProbe(p: ProbeState): void {
  const out = openSync(p.log, 'a')
  const child = spawn('ip', ['netns', 'exec', p.netns, process.execPath, ECHO_SCRIPT, ...p.ports.map(String)], { detached: true, stdio: ['ignore', out, out] })
  child.unref()
  closeSync(out)
  if (child.pid === undefined) throw new HafwError(`probe ${p.name}: could not start the echo responder`)
  p.proc = { pid: child.pid, start: '' }
}

async function waitProbe(p: ProbeState, signal: AbortSignal): Promise<void> {
  const deadline = Date.now() + 20_000
  for (;;) {
    throwIfAborted(signal)
    if (/^ready/m.test(await readFile(p.log, 'utf8').catch(() => ''))) return
    if (!(await alive(p.proc)) || Date.now() > deadline) throw new HafwError(`probe ${p.name}: echo responder not ready; ${p.log}:\n${await tail(p.log)}`)
    await sleep(50)
  }
}

/** Kernel start times make PIDs safe to signal later (see host.ts). */
async function pinStart(ref: { pid: number; start: string } | undefined): Promise<void> {
  if (ref && !ref.start) ref.start = (await procRef(ref.pid))?.start ?? 'gone'
}

function newState(model: Model, plan: LabPlan, rootfs: string): LabState {
  const dir = siteDir(model.site)
  return {
    version: 1,
    site: model.site,
    inventory: resolve(model.source),
    phase: 'starting',
    created: new Date().toISOString(),
    rootfs,
    labNetns: plan.labNetns,
    mgmtIndex: plan.mgmtIndex,
    mgmtSubnet: plan.mgmtSubnet,
    rootPort: plan.rootPort,
    rootAddress: plan.rootAddress,
    bridges: [],
    netns: [],
    rootLinks: [],
    hosts: plan.hosts.map((h) => ({ ...h, upper: join(dir, 'hosts', h.name, 'root'), log: join(dir, 'hosts', h.name, 'console.log') })),
    probes: plan.probes.map((p) => ({ ...p, log: join(dir, 'probes', `${p.name}.log`) })),
    identity: join(dir, 'id_ed25519'),
    knownHosts: join(dir, 'known_hosts'),
    overlay: overlayPath(model.site),
  }
}

/** Wire the lab: namespaces, the management link, bridges, veths named and addressed as the inventory says. */
async function wire(s: LabState, plan: LabPlan, save: () => Promise<void>): Promise<void> {
  // Recorded before it is made (a crash in between leaves nothing unlisted), unlisted again if
  // making it fails: a name that exists already belongs to someone else and must survive teardown.
  const make = async (list: string[], name: string, create: () => Promise<unknown>) => {
    list.push(name)
    await save()
    try {
      await create()
    } catch (e) {
      list.splice(list.indexOf(name), 1)
      await save()
      throw e
    }
  }
  await make(s.netns, s.labNetns, () => ip(['netns', 'add', s.labNetns]))
  // Bridge ports need no IPv6 of their own; devices made later inherit "default".
  await nsSysctl(s.labNetns, ['net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1'])
  for (const x of [...s.hosts, ...s.probes]) await make(s.netns, x.netns, () => ip(['netns', 'add', x.netns]))
  if (HAVE_IPV6()) await Promise.all([...s.hosts, ...s.probes].map((x) => nsSysctl(x.netns, IPV6_NS_SYSCTLS)))
  s.bridges = [{ name: 'mgmt', segment: s.mgmtSubnet }, ...plan.segments.map((g) => ({ name: g.bridge, segment: g.id }))]
  await save()
  const bridge = (name: string) => `link add ${name} type bridge stp_state 0 mcast_snooping 0`
  const lab: string[] = [bridge('mgmt'), 'link set mgmt up', ...plan.segments.flatMap((g) => [bridge(g.bridge), `link set ${g.bridge} up`])]
  const bridgeOf = new Map(plan.segments.map((g) => [g.id, g.bridge]))
  for (const h of s.hosts) {
    // Hosts reach only the root namespace over management, never each other.
    lab.push(`link add ${h.mgmt.port} type veth peer name ${h.mgmt.device} netns ${h.netns}`, `link set ${h.mgmt.port} master mgmt up`, `link set dev ${h.mgmt.port} type bridge_slave isolated on`)
    for (const i of h.interfaces) lab.push(`link add ${i.port} type veth peer name ${i.device} netns ${h.netns}`, `link set ${i.port} master ${bridgeOf.get(i.segment)} up`)
  }
  for (const p of s.probes) lab.push(`link add ${p.port} type veth peer name ${p.device} netns ${p.netns}`, `link set ${p.port} master ${bridgeOf.get(p.subnet)} up`)
  await ipBatch(lab, s.labNetns)
  // The management uplink: one veth from the root namespace into the lab's management bridge.
  await make(s.rootLinks, s.rootPort, () => ip(['link', 'add', s.rootPort, 'type', 'veth', 'peer', 'name', 'up0', 'netns', s.labNetns]))
  await ipBatch(['link set up0 master mgmt up'], s.labNetns)
  // Nothing from the lab is routed on by this machine: no forwarding from the uplink, strict
  // reverse-path filter (drops lab-sourced packets that would be answered via the real uplink).
  await exec('sysctl', ['-qw', `net.ipv4.conf.${s.rootPort}.forwarding=0`, `net.ipv4.conf.${s.rootPort}.rp_filter=1`, `net.ipv6.conf.${s.rootPort}.disable_ipv6=1`])
  await ip(['addr', 'add', s.rootAddress, 'dev', s.rootPort])
  await ip(['link', 'set', s.rootPort, 'up'])

  await Promise.all([
    ...s.hosts.map(async (h) => {
      await ipBatch(hostIpLines(h), h.netns)
      await nsSysctl(h.netns, hostSysctls(h, HAVE_IPV6()))
    }),
    ...s.probes.map((p) => ipBatch(probeIpLines(p), p.netns)),
  ])
}

/**
 * Turn an inventory into running hosts: every node and host a booted Debian container in its
 * own network namespace, segments as bridges, probe hosts with echo responders, and an SSH
 * overlay that reaches every node over 198.18.0.0/15 from the root namespace.
 */
export async function labUp(model: Model, progress: Progress, signal: AbortSignal): Promise<LabUpResult> {
  const t0 = Date.now()
  const log = reporter(progress, model.site)
  requireRoot('hafw lab up')
  await requireTools(LAB_TOOLS.filter((t) => t !== 'debootstrap'))
  const existing = await readState(model.site)
  if (existing) throw new HafwError(`site "${model.site}" already has a lab (${existing.phase}, since ${existing.created}, from ${existing.inventory}); run \`hafw lab down ${model.site}\` first`)
  const plan = planLab(model, await freeMgmtIndex())
  for (const w of plan.warnings) log.warn(w)
  if (!HAVE_IPV6() && (plan.segments.some((g) => g.subnets6?.length) || plan.probes.some((p) => p.address6))) {
    throw new HafwError(`${model.source}: the inventory has IPv6 addresses but this kernel has no IPv6 (/proc/sys/net/ipv6 is missing: booted with ipv6.disable=1?)`)
  }
  const rootfs = await ensureRootfs(progress, signal)
  throwIfAborted(signal)

  const s = newState(model, plan, rootfs.path)
  // Files a `lab up` killed before its claim may have left; the lab state is what counts.
  if (!(await readState(model.site))) await removeTree(siteDir(model.site))
  await mkdir(siteDir(model.site), { recursive: true })
  // Claim the site: a concurrent `lab up` of the same site fails here.
  try {
    await writeFile(join(siteDir(model.site), 'state.json'), JSON.stringify(s, null, 2) + '\n', { flag: 'wx' })
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new HafwError(`site "${model.site}" already has a lab; run \`hafw lab down ${model.site}\` first`)
    throw e
  }
  const save = () => writeState(s)
  // Stops every boot wait as soon as one host fails, so the teardown is not kept waiting.
  const failed = new AbortController()
  const sig = AbortSignal.any([signal, failed.signal])
  // every host's and probe's boot wait listens on it at once (one each, removed when done)
  setMaxListeners(0, sig)
  // state writes during the boot, one at a time (and done before the teardown writes its own)
  let saving = Promise.resolve()
  try {
    log.info(`${s.hosts.length} host(s), ${s.probes.length} probe(s), ${plan.segments.length} segment(s); management ${s.mgmtSubnet} via ${s.rootPort}`)
    await exec('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `hafw-lab-${s.site}`, '-f', s.identity])
    const authorized = await readFile(`${s.identity}.pub`, 'utf8')
    await mkdir(join(siteDir(s.site), 'probes'), { recursive: true })
    for (const h of s.hosts) await prepareUpper(h, authorized)
    const entries: Record<string, OverlayEntry> = Object.fromEntries(
      s.hosts.map((h) => [h.name, { host: h.mgmt.address.split('/')[0]!, port: 22, user: 'root', identity: s.identity, known_hosts: s.knownHosts, host_key: h.hostKey!.fingerprint }]),
    )
    await writeFile(s.knownHosts, s.hosts.map((h) => `${entries[h.name]!.host} ${h.hostKey!.public.split(/\s+/).slice(0, 2).join(' ')}\n`).join(''))
    await wire(s, plan, save)
    throwIfAborted(signal)

    // Probes start at once (a process each); hosts boot BOOT_PARALLEL at a time: a hundred
    // systemd boots at once on two cores leave some without CPU for minutes, and a boot's
    // deadline counts from its own start.
    await ensureInotify(s.hosts.length, log)
    for (const p of s.probes) startProbe(p)
    for (const p of s.probes) await pinStart(p.proc)
    await save()
    const saveSoon = () => (saving = saving.then(save, save))
    let bootError: unknown
    log.info(`booting ${s.hosts.map((h) => h.name).join(', ')}${s.hosts.length > BOOT_PARALLEL ? ` (${BOOT_PARALLEL} at a time)` : ''}`)
    await Promise.all([
      mapLimit(s.hosts, BOOT_PARALLEL, async (h) => {
        if (sig.aborted) return
        try {
          const tBoot = Date.now()
          startHost(h, s.rootfs)
          await pinStart(h.nspawn)
          await saveSoon()
          await waitHost(h, entries[h.name]!, sig)
          h.bootMs = Date.now() - tBoot
          reporter(progress, `${s.site}/${h.name}`).info(`up in ${(h.bootMs / 1000).toFixed(1)} s (sshd active at ${entries[h.name]!.host})`)
        } catch (e) {
          // the others stop waiting; none starts after this
          bootError ??= e
          failed.abort(e)
        }
      }).then(() => {
        if (bootError) throw bootError
      }),
      ...s.probes.map(async (p) => {
        await waitProbe(p, sig)
        const v6 = p.address6 ? ` and ${p.address6}${p.gateway6 ? ` via ${p.gateway6}` : ''}` : ''
        reporter(progress, `${s.site}/${p.name}`).info(`${p.role} ${p.address}${p.gateway ? ` via ${p.gateway}` : ''}${v6}, echo on ${p.ports.join(',')}`)
      }),
    ])
    const overlay: Overlay = { version: 1, site: s.site, inventory: s.inventory, created: new Date().toISOString(), nodes: entries }
    await writeFile(s.overlay, JSON.stringify(overlay, null, 2) + '\n')
    s.phase = 'up'
    await save()
  } catch (e) {
    failed.abort(e)
    await saving.catch(() => undefined)
    s.phase = 'failed'
    await save().catch(() => undefined)
    log.warn(`lab up failed; removing what it made`)
    await teardown(s, progress).catch((te: Error) => log.error(te.message))
    throw e
  }
  const ms = Date.now() - t0
  log.info(`lab up in ${(ms / 1000).toFixed(1)} s; overlay ${s.overlay}`)
  return {
    site: s.site,
    inventory: s.inventory,
    overlay: s.overlay,
    rootfs,
    hosts: s.hosts.map((h) => ({ name: h.name, ...(h.pair ? { pair: h.pair } : {}), mgmt: h.mgmt.address.split('/')[0]!, bootMs: h.bootMs ?? 0 })),
    probes: s.probes.map((p) => ({ name: p.name, role: p.role, address: p.address, ...(p.address6 ? { address6: p.address6 } : {}), ports: p.ports })),
    warnings: plan.warnings,
    ms,
  }
}
