import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { exec, type ProgressEvent } from '@hafw/core'
import { loadInventory, parseInventory, type Model } from '@hafw/inventory'
import {
  applyOverlay, labDown, labExec, labProbes, labStatus, labUp, planLab, readOverlay, requireTools, sshArgv,
  type LabStatus, type LabUpResult, type Overlay,
} from '@hafw/lab'

/*
 * One real lab for every assertion: inventory/lab.yaml booted as Debian hosts, reached over
 * SSH with the overlay's key and pinned host keys, pinged across, then taken down and checked
 * that nothing is left. The site is renamed so a developer's own `lab up` of lab.yaml on the
 * same machine does not collide with the test.
 */

const isRoot = process.getuid?.() === 0
const SITE = 'labtest'
const cli = (args: string[], env: NodeJS.ProcessEnv) => exec(process.execPath, ['packages/cli/bin/run.js', ...args], { env, allowFail: true, timeoutMs: 60_000 })
const netnsList = async () => (await exec('ip', ['netns', 'list'])).stdout.split('\n').map((l) => l.split(' ')[0]!).filter(Boolean)
const rootBridges = async () => (await exec('ip', ['-o', 'link', 'show', 'type', 'bridge'])).stdout.split('\n').filter(Boolean).map((l) => l.split(':')[1]!.trim())

describe.skipIf(!isRoot)('lab: inventory/lab.yaml as real hosts', () => {
  const stateDir = mkdtempSync(join(tmpdir(), 'hafw-labtest-'))
  const env = { ...process.env, HAFW_STATE_DIR: stateDir }
  const events: ProgressEvent[] = []
  let model: Model
  let up: LabUpResult
  let overlay: Overlay
  let status: LabStatus
  let bridgesBefore: string[]

  const ssh = (node: string, cmd: string[]) => exec('ssh', sshArgv(overlay.nodes[node]!, cmd), { allowFail: true, timeoutMs: 30_000 })

  beforeAll(async () => {
    process.env.HAFW_STATE_DIR = stateDir
    model = { ...(await loadInventory('inventory/lab.yaml')), site: SITE }
    bridgesBefore = await rootBridges()
    up = await labUp(model, (e) => events.push(e), AbortSignal.timeout(540_000))
    overlay = (await readOverlay(SITE))!
    status = (await labStatus(SITE))[0]!
  })

  afterAll(async () => {
    await labDown(SITE, () => undefined).catch(() => undefined)
    delete process.env.HAFW_STATE_DIR
    rmSync(stateDir, { recursive: true, force: true })
  })

  it('boots every node with progress per host, warm well under two minutes', () => {
    const nodes = model.pairs.flatMap((p) => p.nodes.map((n) => n.name))
    expect(up.hosts.map((h) => h.name).sort()).toEqual([...nodes].sort())
    expect(status.state).toBe('up')
    expect(status.hosts.every((h) => h.running && h.initPid && (h.rssKiB ?? 0) > 0)).toBe(true)
    for (const n of nodes) expect(events.some((e) => e.scope === `${SITE}/${n}` && /^up in/.test(e.message))).toBe(true)
    if (!up.rootfs.built) expect(up.ms).toBeLessThan(120_000)
    console.log(`lab up: ${(up.ms / 1000).toFixed(1)} s (rootfs ${up.rootfs.built ? `built in ${(up.rootfs.ms / 1000).toFixed(1)} s` : 'cached'}); RSS per host ${status.hosts.map((h) => `${h.name} ${((h.rssKiB ?? 0) / 1024).toFixed(0)} MB`).join(', ')}`)
  })

  it('writes an overlay with management addresses in 198.18.0.0/15 and pinned host keys', () => {
    expect(Object.keys(overlay.nodes).sort()).toEqual(up.hosts.map((h) => h.name).sort())
    for (const e of Object.values(overlay.nodes)) {
      expect(e.host).toMatch(/^198\.1[89]\./)
      expect(e).toMatchObject({ port: 22, user: 'root' })
      expect(e.host_key).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/)
      expect(existsSync(e.identity) && existsSync(e.known_hosts)).toBe(true)
    }
    const m = applyOverlay(model, overlay)
    const fw1a = m.pairs[0]!.nodes[0]
    expect(fw1a.ssh).toMatchObject({ host: overlay.nodes.fw1a!.host, identity: overlay.nodes.fw1a!.identity, host_key: overlay.nodes.fw1a!.host_key })
    // The inventory stays production-shaped.
    expect(fw1a.address).toBe('192.168.10.11')
    expect(() => applyOverlay({ ...model, site: 'other' }, overlay)).toThrow(/site "labtest"/)
  })

  it('each node answers over real sshd with its hostname, interface names and addresses', async () => {
    for (const { node } of model.pairs.flatMap((pair) => pair.nodes.map((node) => ({ node })))) {
      const r = await ssh(node.name, ['hostname', ';', 'ip', '-j', 'addr', 'show', ';', 'systemctl', 'is-active', 'ssh', ';', 'sysctl', '-n', 'net.ipv4.ip_forward'])
      expect(r.code, r.stderr).toBe(0)
      const [hostname, json, active, forward] = r.stdout.trim().split('\n')
      expect(hostname).toBe(node.name)
      expect(active).toBe('active')
      expect(forward).toBe('1')
      const links = JSON.parse(json!) as { ifname: string; addr_info: { family: string; local: string; prefixlen: number }[] }[]
      for (const i of Object.values(node.interfaces)) {
        const link = links.find((l) => l.ifname === i.device)
        expect(link, `${node.name} ${i.device}`).toBeDefined()
        expect(link!.addr_info.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`)).toEqual([i.address!.cidr])
      }
      // No default route: nothing in the lab reaches beyond this machine.
      const routes = await ssh(node.name, ['ip', 'route', 'show', 'default'])
      expect(routes.stdout.trim()).toBe('')
    }
  })

  it('refuses a host key other than the pinned one', async () => {
    // fw1b's address pinned to fw1a's key: OpenSSH must refuse to connect.
    const lines = readFileSync(overlay.nodes.fw1a!.known_hosts, 'utf8').split('\n')
    const fw1aKey = lines.find((l) => l.startsWith(`${overlay.nodes.fw1a!.host} `))!.split(' ').slice(1).join(' ')
    const wrongKh = join(stateDir, 'wrong_known_hosts')
    writeFileSync(wrongKh, `${overlay.nodes.fw1b!.host} ${fw1aKey}\n`)
    const r = await exec('ssh', sshArgv({ ...overlay.nodes.fw1b!, known_hosts: wrongKh }, ['true']), { allowFail: true, timeoutMs: 30_000 })
    expect(r.code).not.toBe(0)
    expect(r.stderr).toMatch(/HOST IDENTIFICATION HAS CHANGED|Host key verification failed/)
  })

  it('links the pair over the sync segment', async () => {
    const r = await ssh('fw1a', ['ping', '-c', '2', '-W', '2', '192.168.13.12'])
    expect(r.code, r.stdout + r.stderr).toBe(0)
    expect(r.stdout).toMatch(/2 received/)
  })

  it('puts a probe client on the outside segment that reaches each firewall node', async () => {
    const probes = await labProbes(SITE)
    const client = probes.find((p) => p.role === 'client' && p.pair === 'edge1' && p.segment === 'outside')!
    expect(client).toMatchObject({ ip: '192.168.10.100', gateway: '192.168.10.10', running: true })
    for (const target of ['192.168.10.11', '192.168.10.12']) {
      const r = await labExec(SITE, client.name, ['ping', '-c', '1', '-W', '2', target], { allowFail: true })
      expect(r.code, `${target}: ${r.stdout}`).toBe(0)
    }
  })

  it('runs TCP and UDP echo servers at the DNAT target and the real servers', async () => {
    const probes = await labProbes(SITE)
    const servers = probes.filter((p) => p.role === 'server').map((p) => p.ip).sort()
    expect(servers).toEqual(['192.168.11.60', '192.168.12.61', '192.168.12.62'])
    expect(probes.find((p) => p.ip === '192.168.11.60')).toMatchObject({ ports: [7, 25, 5353], gateway: '192.168.11.10', pair: 'edge1', segment: 'inside' })
    expect(probes.find((p) => p.ip === '192.168.12.61')).toMatchObject({ gateway: '192.168.12.50', pair: 'lb1', segment: 'back' })
    // From a firewall node (nsenter into its namespaces) to the inside server, both protocols.
    const tcp = await labExec(SITE, 'fw1a', ['bash', '-c', 'exec 3<>/dev/tcp/192.168.11.60/25; echo hello-tcp >&3; timeout 3 head -1 <&3'])
    expect(tcp.stdout.trim()).toBe('hello-tcp')
    const udp = await labExec(SITE, 'fw1a', ['bash', '-c', 'exec 3<>/dev/udp/192.168.11.60/5353; echo hello-udp >&3; timeout 3 head -c 9 <&3'])
    expect(udp.stdout.trim()).toBe('hello-udp')
  })

  it('keeps inventory addresses out of the root namespace', async () => {
    const addrs = (await exec('ip', ['-4', '-o', 'addr', 'show'])).stdout
    const routes = (await exec('ip', ['-4', 'route', 'show'])).stdout
    for (const net of ['192.168.10.', '192.168.11.', '192.168.12.', '192.168.13.']) {
      expect(addrs).not.toContain(net)
      expect(routes).not.toContain(net)
    }
    expect(addrs).toContain(status.rootPort)
    expect(await rootBridges()).toEqual(bridgesBefore)
  })

  it('refuses a second lab up of the running site', async () => {
    await expect(labUp(model, () => undefined, AbortSignal.timeout(60_000))).rejects.toThrow(/already has a lab/)
  })

  it('serves status --json and ssh through the CLI, passing exit codes', async () => {
    const st = await cli(['lab', 'status', '--json'], env)
    expect(st.code, st.stderr).toBe(0)
    expect((JSON.parse(st.stdout) as LabStatus[])[0]).toMatchObject({ site: SITE, state: 'up' })
    const ok = await cli(['lab', 'ssh', 'lb1b', '--', 'hostname'], env)
    expect(ok.stdout.trim()).toBe('lb1b')
    const code = await cli(['lab', 'ssh', 'fw1b', '--', 'exit', '7'], env)
    expect(code.code).toBe(7)
  })

  it('lab down removes every namespace, process, mount, link and file; again is a no-op', async () => {
    const pids = [...status.hosts.flatMap((h) => [h.pid!, h.initPid!]), ...status.probes.map((p) => p.pid!)]
    const [r] = await labDown(SITE, () => undefined)
    expect(r).toMatchObject({ site: SITE, removed: true, hosts: 4 })
    expect((await netnsList()).filter((n) => n === `hafw-${SITE}` || n.startsWith(`hafw-${SITE}-`))).toEqual([])
    for (const pid of pids) {
      const cmd = existsSync(`/proc/${pid}/cmdline`) ? readFileSync(`/proc/${pid}/cmdline`, 'utf8') : ''
      expect(cmd.includes(stateDir) || cmd.includes('echo.mjs') || cmd.includes('systemd-nspawn'), `pid ${pid}: ${cmd}`).toBe(false)
    }
    for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
      let cmd = ''
      try { cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8') } catch { continue }
      expect(cmd.includes(stateDir) && cmd.includes('systemd-nspawn'), cmd).toBe(false)
    }
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    expect(mounts).not.toContain(stateDir)
    expect(mounts).not.toContain(`/run/netns/hafw-${SITE}`)
    expect((await exec('ip', ['-o', 'link', 'show'])).stdout).not.toMatch(new RegExp(`: ${status.rootPort}[@:]`))
    expect(await rootBridges()).toEqual(bridgesBefore)
    expect(existsSync(join(stateDir, 'lab', SITE))).toBe(false)
    expect(await labDown(SITE, () => undefined)).toEqual([expect.objectContaining({ site: SITE, removed: false })])
    const again = await cli(['lab', 'down', SITE], env)
    expect(again.code, again.stderr).toBe(0)
  })
})

describe('lab: inventories the lab cannot realise, missing tools', () => {
  const lab = readFileSync('inventory/lab.yaml', 'utf8')
  const model = (text: string) => {
    const r = parseInventory(text, 'x.yaml')
    expect(r.issues).toEqual([])
    return r.model!
  }

  it('plans segments, management addresses and probes for lab.yaml', () => {
    const p = planLab(model(lab), 3)
    expect(p.mgmtSubnet).toBe('198.18.3.0/24')
    expect(p.segments.map((s) => s.id).sort()).toEqual(['192.168.10.0/24', '192.168.11.0/24', '192.168.12.0/24', '192.168.13.0/24'])
    expect(p.hosts.map((h) => h.mgmt.address)).toEqual(['198.18.3.10/24', '198.18.3.11/24', '198.18.3.12/24', '198.18.3.13/24'])
    expect(p.probes.filter((x) => x.role === 'client').map((x) => x.address).sort()).toEqual(['192.168.10.100/24', '192.168.11.254/24'])
  })

  it('refuses inventory subnets inside the management range', () => {
    const text = lab.replaceAll('192.168.13.', '198.18.0.')
    expect(() => planLab(model(text), 0)).toThrow(/x\.yaml: the lab cannot realise this inventory: subnet 198\.18\.0\.0\/24 overlaps 198\.18\.0\.0\/15/)
  })

  it('refuses overlapping subnets of different sizes', () => {
    const text = lab.replace('sync: 192.168.13.11/24', 'sync: 192.168.13.11/16').replace('sync: 192.168.13.12/24', 'sync: 192.168.13.12/16')
    expect(() => planLab(model(text), 0)).toThrow(/subnets .* overlap/)
  })

  it('names the apt-get line for a missing program', async () => {
    await expect(requireTools(['ip', 'hafw-no-such-tool'])).rejects.toThrow(/missing program: hafw-no-such-tool\ninstall with: apt-get install -y hafw-no-such-tool/)
  })
})
