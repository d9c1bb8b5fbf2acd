/**
 * Rollout benchmark: one change (a VIP added to every pair and conntrackd's socket buffers
 * changed: keepalived.conf, conntrackd.conf and the ruleset differ on every node) rolled out
 * to a 10-pair lab (20 Debian hosts) by `hafw apply --parallel 10`, and in the same run the
 * same work done by Ansible (Debian's package): template the three files, validate them
 * (keepalived -t, iptables-restore --test), reload keepalived, restart conntrackd, load the
 * ruleset; forks 20, pipelining on, no fact gathering. Prints both wall times and the ratio,
 * and the same for a re-run that changes nothing.
 *
 *   sudo npx tsx bench/apply-vs-ansible.ts [--pairs 10[,25,50]]   # fan-out: one lab of the largest size
 *   sudo npx tsx bench/apply-vs-ansible.ts --pairs 10 --hafw-only --keep   # profiling: hafw alone, the lab kept for the next run
 *
 * Root (the lab). Installs ansible with apt-get when it is missing, and python3 into each lab
 * host (Ansible's modules need it; hafw does not) from .debs downloaded on this machine.
 * Not the same safety: hafw also orders each pair (standby, gate, active), arms an on-host
 * rollback, gates on VRRP/conntrackd/SSH health and confirms; Ansible here does none of that.
 * Everything it starts is stopped and removed at the end, also on SIGINT/SIGTERM.
 *
 * Measured here (2 cores, 24 GB; one run of --pairs 10,25,50 on a 100-host lab, 2026-12-07):
 *   change  10 pairs  hafw 4.0 s  ansible 30.4 s  7.6x    no-op 1.2 s / 12.7 s  10.2x
 *   change  25 pairs  hafw 9.3 s  ansible 71.2 s  7.6x    no-op 2.3 s / 29.8 s  13.0x
 *   change  50 pairs  hafw 17.4 s ansible 141.8 s 8.1x    no-op 3.8 s / 60.2 s  15.7x
 * (2026-12-06, before the CLI ran from a bundle and exited at once: 4.1 / 10.3 / 22.7 s,
 * no-op 1.5 / 4.1 / 7.2 s; 2026-12-04: 5.5 / 14.2 / 22.8 s.) hafw is CPU-bound from 10 pairs
 * on: the 50-pair change kept the machine 34.0 s busy of 34.9 s (about 0.34 s of CPU per node,
 * most of it on the nodes: two SSH logins, systemd and systemctl, conntrackd's restart in its
 * sandbox, per gate sample conntrackd -s, ip and systemctl on both nodes), so on two cores it
 * cannot finish under ~17 s, nor the 10-pair change under ~3.5 s. On a 20-host lab
 * (--hafw-only --keep) the change took 3.7-4.2 s at 6.8-8.0 s of CPU; CLI start, queue and
 * result 394-626 ms of it (680-815 ms on 2026-12-06).
 */
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { exec, which } from '@hafw/core'
import { loadInventory } from '@hafw/inventory'
import { applyOverlay, labDown, labExec, labUp, readOverlay, rootfsPath } from '@hafw/lab'
import { renderInventory } from '@hafw/render'
import { stopEmbeddedRedis } from '@hafw/queue'

const { values } = parseArgs({ options: { pairs: { type: 'string', default: '10' }, 'hafw-only': { type: 'boolean', default: false }, keep: { type: 'boolean', default: false } } })
/** --keep: the lab (and its state directory) outlive the run, and the next --keep run reuses them */
const KEEP = values.keep!
const ONLY_HAFW = values['hafw-only']!
/** fan-out: one lab of the largest size; each run changes the first N pairs of it */
const SIZES = values.pairs!.split(',').map(Number).sort((a, b) => a - b)
const PAIRS = SIZES[SIZES.length - 1]!
if (process.getuid?.() !== 0) throw new Error('run as root: the benchmark boots a lab')
const SITE = 'benchap'
const dir = KEEP ? join(tmpdir(), 'hafw-bench-apply-keep') : mkdtempSync(join(tmpdir(), 'hafw-bench-apply-'))
mkdirSync(dir, { recursive: true })
process.env.HAFW_STATE_DIR = join(dir, 'state')
const env = { ...process.env }
const CLI = resolve('packages/cli/bin/run.js')
const sec = (ms: number) => `${(ms / 1000).toFixed(1)} s`

/** The inventory: PAIRS firewall pairs with conntrackd sync; `vips` extra outside VIPs, `buf` socket buffers. */
function inventory(extraVip: string | null, buf: number, n = PAIRS): string {
  const pairs = Array.from({ length: n }, (_, k) => {
    const i = k + 1
    const [o, n, s] = [20 + 3 * i, 21 + 3 * i, 22 + 3 * i].map((x) => `192.168.${x}`)
    const node = (suffix: string, host: number, prio: number) => `
      - name: fw${i}${suffix}
        address: ${o}.${host}
        priority: ${prio}
        interfaces: { outside: ens3, inside: ens4, sync: ens5 }
        addresses: { outside: ${o}.${host}/24, inside: ${n}.${host}/24, sync: ${s}.${host}/24 }`
    return `
  - name: edge${i}
    kind: firewall
    nodes:${node('a', 11, 150)}${node('b', 12, 100)}
    vrrp:
      instances:
        - { name: VI_OUT, interface: outside, vrid: 61, vips: [${o}.10/24${extraVip ? `, ${o}.${extraVip}/24` : ''}] }
        - { name: VI_IN, interface: inside, vrid: 62, vips: [${n}.10/24] }
    conntrack_sync: { interface: sync }
    nat:
      snat:
        - { out: outside, src: ${n}.0/24, to: ${o}.10 }
    filter:
      allow:
        - { in: inside, src: ${n}.0/24 }`
  })
  return `version: 1
site: ${SITE}
defaults:
  vrrp: { advert_int: 1 }
  conntrack_sync: { snd_socket_buffer: ${buf}, rcv_socket_buffer: ${buf} }
  firewall: { backend: iptables, ownership: full }
pairs:${pairs.join('')}
`
}

const files = { base: join(dir, 'base.yaml') }
writeFileSync(files.base, inventory(null, 1249280))
/** A change for the first n pairs that differs from whatever ran before it (the k-th change of the run). */
function changeFile(tool: string, n: number, k: number): string {
  const f = join(dir, `change-${tool}-${n}-${k}.yaml`)
  writeFileSync(f, inventory(String(60 + k), 1249280 + 65536 * k, n))
  return f
}

let cleaned = false
async function cleanup(): Promise<void> {
  if (cleaned) return
  cleaned = true
  if (KEEP) return console.error(`lab ${SITE} kept (state ${dir}); remove it with: HAFW_STATE_DIR=${join(dir, 'state')} node ${CLI} lab down ${SITE}`)
  await labDown(SITE, () => undefined).catch((e: Error) => console.error(`lab down: ${e.message}`))
  await stopEmbeddedRedis(join(dir, 'state', 'redis')).catch(() => undefined)
  rmSync(dir, { recursive: true, force: true })
}
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => void cleanup().then(() => process.exit(130)))

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = Date.now()
  const r = await fn()
  return [r, Date.now() - t0]
}

interface Phases {
  /** per pair, ms from the job's start: SSH sessions open, nodes read and planned, both staged and checked */
  connected: number[]
  planned: number[]
  staged: number[]
  /** per changed node: swap (files in place, services run), health gate, confirm */
  swap: number[]
  gate: number[]
  confirm: number[]
  /** per swap step (keepalived/reload, conntrackd/restart, ...) */
  steps: Record<string, number[]>
}

/** The machine's busy CPU time so far, in ms (all cores: user, nice, system, irq, softirq; /proc/stat counts in 10 ms ticks). */
function cpuBusyMs(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number)
  return (f[0]! + f[1]! + f[2]! + f[5]! + f[6]!) * 10
}

async function hafwApply(file: string, parallel: number): Promise<{ ok: boolean; results: string[]; pairMs: number; maxPairMs: number; nodeMs: number; gateMs: number; cpuMs: number; phases: Phases }> {
  const cpu0 = cpuBusyMs()
  const r = await exec(process.execPath, [CLI, 'apply', file, '--yes', '--parallel', String(parallel), '--json', '--verbose'], { env, allowFail: true, timeoutMs: 900_000 })
  if (r.code !== 0) throw new Error(`hafw apply ${file} failed (exit ${r.code}):\n${r.stdout}\n${r.stderr.split('\n').slice(-15).join('\n')}`)
  const s = JSON.parse(r.stdout) as { ok: boolean; pairs: { result: string; ms: number | null; outcome?: { nodes: { gateMs?: number; ms: number }[] } }[] }
  const nodes = s.pairs.flatMap((p) => p.outcome?.nodes ?? []).filter((n) => n.gateMs !== undefined)
  const avg = (xs: number[]) => (xs.length ? Math.round(xs.reduce((a, x) => a + x, 0) / xs.length) : 0)
  // the phase lines apply logs at debug level (packages/apply/src/pair.ts)
  const ph: Phases = { connected: [], planned: [], staged: [], swap: [], gate: [], confirm: [], steps: {} }
  const all = (re: RegExp) => [...r.stderr.matchAll(re)]
  for (const m of all(/phase: connected in (\d+) ms/g)) ph.connected.push(Number(m[1]))
  for (const m of all(/phase: read and planned at (\d+) ms/g)) ph.planned.push(Number(m[1]))
  for (const m of all(/phase: staged and checked at (\d+) ms/g)) ph.staged.push(Number(m[1]))
  for (const m of all(/phase: swapped in (\d+) ms \((.*)\)/g)) {
    ph.swap.push(Number(m[1]))
    for (const x of m[2]!.matchAll(/(\S+) (\d+) ms/g)) (ph.steps[x[1]!] ??= []).push(Number(x[2]))
  }
  for (const m of all(/phase: health gate passed in (\d+) ms/g)) ph.gate.push(Number(m[1]))
  const swapAvg = avg(ph.swap)
  for (const n of nodes) ph.confirm.push(Math.max(0, n.ms - n.gateMs! - swapAvg))
  const pairMs = s.pairs.map((p) => p.ms ?? 0)
  return { ok: s.ok, cpuMs: cpuBusyMs() - cpu0, results: s.pairs.map((p) => p.result), pairMs: avg(pairMs), maxPairMs: Math.max(0, ...pairMs), nodeMs: avg(nodes.map((n) => n.ms)), gateMs: avg(nodes.map((n) => n.gateMs!)), phases: ph }
}

/** "avg 120 / max 340 ms" of a phase's figures */
function spread(xs: number[]): string {
  if (!xs.length) return '-'
  return `avg ${Math.round(xs.reduce((a, x) => a + x, 0) / xs.length)} / max ${Math.max(...xs)} ms`
}

const count = (xs: string[]) => Object.entries(xs.reduce<Record<string, number>>((a, x) => ((a[x] = (a[x] ?? 0) + 1), a), {})).map(([k, v]) => `${v} ${k}`).join(', ')

/** python3 for Ansible's modules: .debs resolved against the lab image's dpkg status, installed on every host (dpkg -i again until pre-dependencies are met). */
async function installPython(nodes: string[]): Promise<void> {
  const debs = join(dir, 'debs')
  mkdirSync(join(debs, 'partial'), { recursive: true })
  const apt = (extra: string[]) =>
    exec('apt-get', ['-q', '-y', '--no-install-recommends', '-o', `Dir::State::status=${rootfsPath()}/var/lib/dpkg/status`, '-o', `Dir::Cache::archives=${debs}`, '--download-only', 'install', 'python3', ...extra], { allowFail: true, timeoutMs: 300_000 })
  let r = await apt([])
  if (r.code !== 0) {
    await exec('apt-get', ['update', '-q'], { timeoutMs: 300_000 })
    r = await apt([])
    if (r.code !== 0) throw new Error(`downloading python3 for the lab hosts failed:\n${r.stderr}`)
  }
  const tar = (await exec('sh', ['-c', `cd ${debs} && tar -c *.deb | base64 -w0`], { timeoutMs: 60_000 })).stdout
  const one = async (n: string) => {
    const x = await labExec(SITE, n, ['sh', '-c', 'mkdir -p /tmp/debs && cd /tmp/debs && base64 -d | tar -x && export DEBIAN_FRONTEND=noninteractive; for pass in 1 2 3; do dpkg -i /tmp/debs/*.deb >/tmp/dpkg.log 2>&1 && break; done && rm -rf /tmp/debs || { cat /tmp/dpkg.log >&2; exit 1; }'], { input: tar, allowFail: true, timeoutMs: 300_000 })
    if (x.code !== 0) throw new Error(`${n}: installing python3 failed: ${x.stderr}`)
  }
  for (let i = 0; i < nodes.length; i += 4) await Promise.all(nodes.slice(i, i + 4).map(one))
}

async function ensureAnsible(): Promise<string> {
  if (!(await which('ansible-playbook'))) {
    console.error('installing ansible (apt-get)...')
    let r = await exec('apt-get', ['install', '-y', '-q', 'ansible'], { allowFail: true, timeoutMs: 900_000, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } })
    if (r.code !== 0) {
      await exec('apt-get', ['update', '-q'], { timeoutMs: 300_000 })
      r = await exec('apt-get', ['install', '-y', '-q', 'ansible'], { timeoutMs: 900_000, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } })
    }
  }
  return (await exec('ansible-playbook', ['--version'])).stdout.split('\n')[0]!
}

/** The Ansible project: the rendered files as templates, one play, handlers in apply order. */
async function ansibleProject(file: string, tag: string): Promise<{ dir: string; env: NodeJS.ProcessEnv }> {
  const a = join(dir, `ansible-${tag}`)
  const model = applyOverlay(await loadInventory(file), (await readOverlay(SITE))!)
  const pick: Record<string, string> = { '/etc/keepalived/keepalived.conf': 'keepalived.conf', '/etc/conntrackd/conntrackd.conf': 'conntrackd.conf', '/etc/iptables/rules.v4': 'rules.v4' }
  const hosts: string[] = []
  // the lab's one known_hosts file pins every host's key
  const kh = model.pairs[0]!.nodes[0].ssh.known_hosts
  for (const n of renderInventory(model)) {
    mkdirSync(join(a, 'templates', n.node), { recursive: true })
    for (const f of n.files) if (pick[f.path]) writeFileSync(join(a, 'templates', n.node, pick[f.path]!), f.content)
    const ssh = model.pairs.flatMap((p) => p.nodes).find((x) => x.name === n.node)!.ssh
    hosts.push(`${n.node} ansible_host=${ssh.host} ansible_user=${ssh.user} ansible_ssh_private_key_file=${ssh.identity}`)
  }
  writeFileSync(join(a, 'hosts.ini'), `[fw]\n${hosts.join('\n')}\n`)
  writeFileSync(
    join(a, 'ansible.cfg'),
    `[defaults]
inventory = hosts.ini
forks = ${hosts.length}
host_key_checking = True
interpreter_python = /usr/bin/python3
gathering = explicit
stdout_callback = default
retry_files_enabled = False
local_tmp = ${a}/tmp

[ssh_connection]
pipelining = True
ssh_args = -o ControlMaster=auto -o ControlPersist=60s -o IdentitiesOnly=yes -o UserKnownHostsFile=${kh} -o GlobalKnownHostsFile=/dev/null
control_path_dir = ${a}/cp
`,
  )
  writeFileSync(
    join(a, 'site.yml'),
    `- hosts: fw
  gather_facts: false
  tasks:
    - name: keepalived.conf
      ansible.builtin.template: { src: "{{ inventory_hostname }}/keepalived.conf", dest: /etc/keepalived/keepalived.conf, mode: "0644", validate: "keepalived -t -f %s" }
      notify: reload keepalived
    - name: conntrackd.conf
      ansible.builtin.template: { src: "{{ inventory_hostname }}/conntrackd.conf", dest: /etc/conntrackd/conntrackd.conf, mode: "0644" }
      notify: restart conntrackd
    - name: ruleset
      ansible.builtin.template: { src: "{{ inventory_hostname }}/rules.v4", dest: /etc/iptables/rules.v4, mode: "0600", validate: "iptables-restore --test %s" }
      notify: load ruleset
  handlers:
    - name: load ruleset
      ansible.builtin.command: /usr/local/sbin/hafw-firewall
    - name: restart conntrackd
      ansible.builtin.service: { name: conntrackd, state: restarted }
    - name: reload keepalived
      ansible.builtin.service: { name: keepalived, state: reloaded }
`,
  )
  return { dir: a, env: { ...process.env, ANSIBLE_CONFIG: join(a, 'ansible.cfg'), ANSIBLE_NOCOLOR: '1', HOME: a } }
}

async function ansibleRun(p: { dir: string; env: NodeJS.ProcessEnv }): Promise<{ changed: number; failed: number; hosts: number }> {
  const r = await exec('ansible-playbook', ['site.yml'], { cwd: p.dir, env: p.env, allowFail: true, timeoutMs: 900_000 })
  const recap = [...r.stdout.matchAll(/^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)/gm)]
  const failed = recap.reduce((a, m) => a + Number(m[4]) + Number(m[5]), 0)
  if (r.code !== 0 || failed) throw new Error(`ansible-playbook failed (exit ${r.code}):\n${r.stdout.split('\n').slice(-30).join('\n')}\n${r.stderr}`)
  return { changed: recap.reduce((a, m) => a + Number(m[3]), 0), failed, hosts: recap.length }
}

try {
  const load = (await exec('cat', ['/proc/loadavg'])).stdout.trim()
  const model = await loadInventory(files.base)
  const nodes = model.pairs.flatMap((p) => p.nodes.map((n) => n.name))
  const reuse = KEEP && !!(await readOverlay(SITE).catch(() => null))
  if (reuse) console.log(`lab: ${PAIRS} pairs, ${nodes.length} hosts kept from an earlier --keep run`)
  else {
    const [, upMs] = await timed(() => labUp(model, () => undefined, AbortSignal.timeout(1_800_000)))
    console.log(`lab: ${PAIRS} pairs, ${nodes.length} hosts up in ${sec(upMs)}; load average ${load}`)
  }
  if (!ONLY_HAFW) {
    const version = await ensureAnsible()
    const [, pyMs] = await timed(() => installPython(nodes))
    console.log(`setup: ${version}; python3 installed on ${nodes.length} hosts in ${sec(pyMs)}`)
  }

  const [first, firstMs] = await timed(() => hafwApply(files.base, PAIRS))
  console.log(`hafw ${reuse ? 'apply of the base inventory' : 'first apply (fresh hosts, units enabled and started)'}: ${sec(firstMs)} (${count(first.results)})`)

  const rows: string[][] = []
  // a kept lab holds the last run's change: count on from it (VIPs .61 to .160 stay free)
  const kFile = join(dir, 'k')
  let k = reuse ? Number(readFileSync(kFile, 'utf8')) % 90 : 0
  for (const n of SIZES) {
    const hFile = changeFile('hafw', n, ++k)
    const [h, hMs] = await timed(() => hafwApply(hFile, n))
    const [h0, h0Ms] = await timed(() => hafwApply(hFile, n))
    writeFileSync(kFile, String(k + 2))
    if (ONLY_HAFW) rows.push([`change, ${n} pairs (${2 * n} hosts)`, sec(hMs), '-', '-', `hafw: ${count(h.results)}`], [`no-op, ${n} pairs`, sec(h0Ms), '-', '-', `hafw: ${count(h0.results)}`])
    else {
      const project = await ansibleProject(changeFile('ansible', n, ++k), String(n))
      const [an, aMs] = await timed(() => ansibleRun(project))
      const [an0, a0Ms] = await timed(() => ansibleRun(project))
      rows.push(
        [`change, ${n} pairs (${2 * n} hosts)`, sec(hMs), sec(aMs), `${(aMs / hMs).toFixed(1)}x`, `hafw: ${count(h.results)}; ansible: ${an.changed} changed on ${an.hosts} hosts`],
        [`no-op, ${n} pairs`, sec(h0Ms), sec(a0Ms), `${(a0Ms / h0Ms).toFixed(1)}x`, `hafw: ${count(h0.results)}; ansible: ${an0.changed} changed`],
      )
    }
    const p = h.phases
    console.log(`\n${n} pairs, hafw change: wall ${sec(hMs)}; slowest pair job ${h.maxPairMs} ms, so ${hMs - h.maxPairMs} ms are CLI start, queue and result; CPU ${sec(h.cpuMs)} busy of ${sec(hMs * cpus().length)} (${cpus().length} cores, whole machine)`)
    console.log(`  per pair job: sessions open ${spread(p.connected)}; read+planned at ${spread(p.planned)}; staged+checked at ${spread(p.staged)}; job ${h.pairMs} ms avg`)
    console.log(`  per node (2 in turn per pair): swap ${spread(p.swap)}, health gate ${spread(p.gate)}, confirm ${spread(p.confirm)}`)
    console.log(`  swap steps: ${Object.entries(p.steps).map(([step, xs]) => `${step} ${spread(xs)}`).join('; ')}`)
  }
  const head = ['', 'hafw', 'ansible', 'ansible/hafw', '']
  const w = head.map((x, i) => Math.max(x.length, ...rows.map((r) => r[i]!.length)))
  console.log(['', [head, ...rows].map((r) => r.map((c, i) => c.padEnd(w[i]!)).join('  ').trimEnd()).join('\n')].join('\n'))
  console.log(`\nhafw: rollout through the job queue, all pairs in parallel, per pair standby -> health gate -> active, rollback timer armed and confirmed per node.`)
  console.log(`ansible: forks = hosts, pipelining, ControlPersist, no facts; template + validate + handlers, all hosts at once, no HA order, no health gate.`)
} finally {
  await cleanup()
}
