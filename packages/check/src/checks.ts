import { spawn, type ChildProcess } from 'node:child_process'
import { access, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { exec, which, type ExecResult } from '@hafw/core'
import { SCRIPTS, type RenderedFile } from '@hafw/render'
import type { Netns } from './netns.js'

/*
 * One checker per kind of file. Each runs the tool that will load the file on the node, inside
 * the node's throwaway namespace or against a copy under a temporary root, and returns the
 * tool's own words.
 */

export interface Verdict {
  ok: boolean
  /** the tool that judged, e.g. "keepalived -t" */
  tool: string
  /** one-line summary */
  message: string
  /** the tool's output when it has something to say */
  detail?: string
}

export interface Ctx {
  ns: Netns
  /** temporary root: every rendered file is also at root + its path */
  root: string
  files: RenderedFile[]
  /** conntrackd started by the conntrackd check, stopped by cleanup */
  conntrackd?: { child: ChildProcess; conf: string; exited: Promise<number | null> }
}

export const tmp = (ctx: Ctx, path: string) => join(ctx.root, path)
const out = (r: ExecResult) => (r.stdout + r.stderr).trim()
const pass = (tool: string, message: string, detail?: string): Verdict => ({ ok: true, tool, message, ...(detail ? { detail } : {}) })
const fail = (tool: string, message: string, detail?: string): Verdict => ({ ok: false, tool, message, ...(detail ? { detail } : {}) })
const lines = (s: string) => s.split('\n').filter((l) => l.trim() && !l.trim().startsWith('#'))

/** keepalived -t: exit 0 only when it reported nothing; 4 = fatal or bad interface, 5 = config errors, 6 = script security. */
async function keepalived(ctx: Ctx, f: RenderedFile): Promise<Verdict> {
  const r = await ctx.ns.run('keepalived', ['-t', '-f', tmp(ctx, f.path)])
  const said = out(r)
  const meaning: Record<number, string> = { 4: 'fatal error or missing interface', 5: 'configuration errors', 6: 'script security error' }
  if (r.code === 0 && !said) return pass('keepalived -t', 'configuration test passed')
  return fail('keepalived -t', `exit ${r.code}${meaning[r.code] ? ` (${meaning[r.code]})` : ''}`, said)
}

/**
 * The syntax check, then a real load into the throwaway namespace: `iptables-restore --test`
 * (nf_tables backend) accepts a jump to a chain that does not exist; only loading finds it.
 */
async function firewallRules(ctx: Ctx, f: RenderedFile): Promise<Verdict> {
  const path = tmp(ctx, f.path)
  const nft = f.check === 'nftables'
  const restore = f.check === 'ip6tables' ? 'ip6tables-restore' : 'iptables-restore'
  const noflush = !nft && /^:HAFW-/m.test(f.content) ? ['--noflush'] : []
  const steps: [string, string, string[]][] = nft
    ? [['nft -c', 'nft', ['-c', '-f', path]], ['nft -f (netns)', 'nft', ['-f', path]]]
    : [
        [`${restore} ${[...noflush, '--test'].join(' ')}`, restore, [...noflush, '--test', path]],
        [`${restore} (netns)`, restore, [...noflush, path]],
      ]
  for (const [tool, cmd, args] of steps) {
    const r = await ctx.ns.run(cmd, args)
    if (r.code !== 0) return fail(tool, `exit ${r.code}`, out(r))
  }
  return pass(steps.map((s) => s[0]).join('; '), 'accepted and loaded')
}

async function shellSyntax(ctx: Ctx, f: RenderedFile): Promise<Verdict | null> {
  const r = await exec('sh', ['-n', tmp(ctx, f.path)], { allowFail: true })
  return r.code === 0 ? null : fail('sh -n', `exit ${r.code}`, out(r))
}

/** hafw-firewall, loaded twice: both runs succeed and every jump exists exactly once. */
async function firewallScript(ctx: Ctx, f: RenderedFile): Promise<Verdict> {
  const rules = ctx.files.find((x) => x.service === 'firewall' && (x.check === 'iptables' || x.check === 'nftables'))
  const rules6 = ctx.files.find((x) => x.check === 'ip6tables')
  if (!rules) return fail('hafw-firewall', 'no rules file rendered for it')
  const env = { HAFW_FIREWALL_RULES: tmp(ctx, rules.path), ...(rules6 ? { HAFW_FIREWALL_RULES6: tmp(ctx, rules6.path) } : {}) }
  for (const run of [1, 2]) {
    const r = await ctx.ns.run('sh', [tmp(ctx, f.path)], { env })
    if (r.code !== 0) return fail('sh -n; hafw-firewall in netns', `run ${run}: exit ${r.code}`, out(r))
  }
  if (rules.check === 'nftables') {
    const r = await ctx.ns.run('nft', ['list', 'table', 'inet', 'hafw'])
    if (r.code !== 0) return fail('hafw-firewall in netns', 'table inet hafw missing after loading', out(r))
    return pass('sh -n; hafw-firewall in netns', `loaded twice, table inet hafw has ${(r.stdout.match(/^\s+chain /gm) ?? []).length} chains`)
  }
  const said: string[] = []
  for (const save of rules6 ? ['iptables-save', 'ip6tables-save'] : ['iptables-save']) {
    const dump = await ctx.ns.run(save, [])
    let table = ''
    const jumps: string[] = []
    for (const l of dump.stdout.split('\n')) {
      if (l.startsWith('*')) table = l.slice(1)
      else if (/^-A [A-Z]+ -j HAFW-/.test(l)) jumps.push(`${table}: ${l}`)
    }
    const dup = jumps.filter((l, i) => jumps.indexOf(l) !== i)
    if (dup.length) return fail('hafw-firewall in netns', `${save}: jumps duplicated by a second run`, dup.join('\n'))
    const rulesCount = dump.stdout.split('\n').filter((l) => l.startsWith('-A ')).length
    said.push(`${rulesCount} ${save === 'iptables-save' ? 'IPv4' : 'IPv6'} rules${jumps.length ? `, ${jumps.length} jumps once each` : ''}`)
  }
  return pass('sh -n; hafw-firewall in netns', `loaded twice, ${said.join('; ')}`)
}

/** hafw-routing, run twice: routes replaced, each policy rule present once. */
async function routingScript(ctx: Ctx, f: RenderedFile): Promise<Verdict> {
  for (const run of [1, 2]) {
    const r = await ctx.ns.run('sh', [tmp(ctx, f.path)])
    if (r.code !== 0) return fail('sh -n; hafw-routing in netns', `run ${run}: exit ${r.code}`, out(r))
  }
  const lines = async (args: string[], keep: RegExp) =>
    (await Promise.all(['-4', '-6'].map((f) => ctx.ns.run('ip', [f, ...args])))).flatMap((r, k) => r.stdout.split('\n').filter((l) => keep.test(l)).map((l) => `${k ? '-6' : '-4'} ${l}`))
  const rules = await lines(['rule', 'list'], /fwmark/)
  const dup = rules.filter((l, i) => rules.findIndex((x) => x.replace(/ \d+:/, '') === l.replace(/ \d+:/, '')) !== i)
  if (dup.length) return fail('hafw-routing in netns', 'policy rules duplicated by a second run', dup.join('\n'))
  const routes = await lines(['route', 'show', 'table', 'all'], / via /)
  return pass('sh -n; hafw-routing in netns', `ran twice: ${routes.length} routes via gateways, ${rules.length} fwmark rules`)
}

/** hafw-notify against the conntrackd the conntrackd check started (or none for LVS pairs). */
async function notifyScript(ctx: Ctx, f: RenderedFile): Promise<Verdict> {
  const run = join(ctx.root, 'run-hafw')
  const env: Record<string, string> = {
    HAFW_RUN_DIR: run,
    HAFW_LOG: join(ctx.root, 'notify.log'),
    HAFW_HISTORY: join(ctx.root, 'transitions.jsonl'),
    HAFW_NO_SYSLOG: '1',
    ...(ctx.conntrackd ? { HAFW_CONNTRACKD_CONF: ctx.conntrackd.conf } : { HAFW_CONNTRACKD_CONF: join(ctx.root, 'no-conntrackd.conf') }),
  }
  const tool = `sh -n; hafw-notify primary|backup|fault${ctx.conntrackd ? ' against conntrackd' : ''}`
  let summary = ''
  for (const role of ['primary', 'backup', 'fault']) {
    const r = await ctx.ns.run('sh', [tmp(ctx, f.path), role], { env })
    if (r.code !== 0) return fail(tool, `${role}: exit ${r.code}`, out(r))
    let state: { role?: string; phase?: string; ok?: boolean; commit?: { duration_ms: number; external_entries: number | null } | null }
    try {
      state = JSON.parse(await readFile(join(run, 'state.json'), 'utf8')) as typeof state
    } catch (e) {
      return fail(tool, `${role}: state.json unreadable: ${(e as Error).message}`, await readFile(env.HAFW_LOG!, 'utf8').catch(() => ''))
    }
    const log = await readFile(env.HAFW_LOG!, 'utf8').catch(() => '')
    if (state.role !== role || state.phase !== 'done') return fail(tool, `${role}: state.json says role ${state.role}, phase ${state.phase}`, log)
    if (!state.ok) return fail(tool, `${role}: a step failed`, log.split('\n').filter((l) => / -> exit [1-9]/.test(l)).join('\n'))
    if (role === 'primary' && ctx.conntrackd) summary = `, commit of ${state.commit?.external_entries ?? '?'} entries took ${state.commit?.duration_ms ?? '?'} ms`
  }
  return pass(tool, `all three transitions ran, state.json written${summary}`)
}

/**
 * conntrackd against the file, in the namespace, with its lock file, control socket and log
 * moved under the temporary root so the host's own conntrackd is never touched. It keeps
 * running for the hafw-notify check; cleanup() stops it.
 */
async function conntrackd(ctx: Ctx, f: RenderedFile): Promise<Verdict> {
  const dir = ctx.root
  const conf = join(dir, 'conntrackd.check.conf')
  const log = join(dir, 'conntrackd.log')
  await writeFile(conf, isolateConntrackd(f.content, dir))
  const child = spawn('ip', ['netns', 'exec', ctx.ns.name, 'conntrackd', '-C', conf], { stdio: ['ignore', 'pipe', 'pipe'] })
  let said = ''
  child.stdout?.on('data', (d: Buffer) => (said += d.toString()))
  child.stderr?.on('data', (d: Buffer) => (said += d.toString()))
  const exited = new Promise<number | null>((res) => child.on('close', (code) => res(code)))
  child.on('error', () => {})
  ctx.conntrackd = { child, conf, exited }
  const tool = 'conntrackd (started in netns)'
  const deadline = Date.now() + 10_000
  let gone: number | null | undefined
  void exited.then((c) => (gone = c))
  while (Date.now() < deadline) {
    if (gone !== undefined) break
    const s = await ctx.ns.run('conntrackd', ['-C', conf, '-s'], { timeoutMs: 5_000 })
    if (s.code === 0) {
      // the daemon's own complaints (deprecated or ignored settings) count as failures
      const complaints = said.split('\n').filter((l) => /\[(warning|ERROR)\]|^ERROR|WARNING/.test(l))
      if (complaints.length) return fail(tool, 'started, but complained about the configuration', complaints.join('\n'))
      return pass(tool, 'started, answered on its control socket')
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  const logText = await readFile(log, 'utf8').catch(() => '')
  return fail(tool, gone !== undefined ? `exited with ${gone} before answering` : 'did not answer within 10 s', (said || logText).trim())
}

/** A conntrackd.conf whose lock file, control socket and log live in dir (syslog off). */
export function isolateConntrackd(content: string, dir: string): string {
  return content
    .replace(/^(\s*LockFile)\s+\S+/m, `$1 ${join(dir, 'conntrackd.lock')}`)
    .replace(/^(\s*Path)\s+\S+/m, `$1 ${join(dir, 'conntrackd.ctl')}`)
    .replace(/^(\s*LogFile)\s+\S+/m, `$1 ${join(dir, 'conntrackd.log')}`)
    .replace(/^(\s*Syslog)\s+\S+/m, '$1 off')
}

export async function stopConntrackd(ctx: Ctx): Promise<void> {
  const c = ctx.conntrackd
  if (!c) return
  ctx.conntrackd = undefined
  // -k also stops a daemon hafw-notify may have started on the same socket (its "start" step)
  await ctx.ns.run('conntrackd', ['-C', c.conf, '-k'], { timeoutMs: 5_000 })
  if (c.child.exitCode !== null || c.child.signalCode !== null) return
  const done = await Promise.race([c.exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 5_000))])
  if (!done && c.child.pid) {
    process.kill(c.child.pid, 'SIGKILL')
    await c.exited
  }
}

/** Units: systemd-analyze verify, with paths of rendered files pointing at their copies. */
async function unit(ctx: Ctx, f: RenderedFile): Promise<Verdict> {
  if (!(await which('systemd-analyze'))) return pass('systemd-analyze verify', 'skipped: systemd-analyze is not installed')
  let text = f.content
  for (const x of ctx.files) text = text.split(x.path).join(tmp(ctx, x.path))
  await writeFile(tmp(ctx, f.path), text)
  const unitDir = join(ctx.root, 'etc/systemd/system')
  const m = /\/([^/]+)\.d\/[^/]+$/.exec(f.path)
  const name = m ? m[1]! : f.path.split('/').pop()!
  const r = await exec('systemd-analyze', ['verify', '--man=no', name], { allowFail: true, env: { ...process.env, SYSTEMD_UNIT_PATH: `${unitDir}:` }, timeoutMs: 30_000 })
  // a complaint about another rendered unit (loaded as a dependency) is that unit's failure
  const own = tmp(ctx, f.path)
  const said = out(r)
    .split('\n')
    .filter((l) => l.includes(own) || !l.includes(`${ctx.root}/`))
    .join('\n')
    .trim()
  await writeFile(tmp(ctx, f.path), f.content)
  return r.code === 0 && !said ? pass('systemd-analyze verify', `${name} verified`) : fail('systemd-analyze verify', `${name}: ${r.code ? `exit ${r.code}` : 'complaints'}`, said)
}

/** sysctls: net.* keys are set for real inside the namespace; others must exist (read only). */
async function sysctl(ctx: Ctx, f: RenderedFile): Promise<Verdict> {
  const entries = lines(f.content).map((l) => l.split('=').map((s) => s.trim()) as [string, string])
  const bad: string[] = []
  for (const [key, value] of entries) {
    const r = key.startsWith('net.') ? await ctx.ns.run('sysctl', ['-w', `${key}=${value}`]) : await ctx.ns.run('sysctl', ['-n', key])
    if (r.code !== 0) bad.push(out(r) || `${key}: exit ${r.code}`)
  }
  return bad.length ? fail('sysctl', `${bad.length} of ${entries.length} keys refused`, bad.join('\n')) : pass('sysctl', `${entries.length} keys accepted in netns`)
}

async function modules(_ctx: Ctx, f: RenderedFile): Promise<Verdict> {
  const bad: string[] = []
  for (const m of lines(f.content)) {
    const loaded = await access(`/sys/module/${m}`).then(() => true, () => false)
    if (loaded) continue
    const r = await exec('modprobe', ['-n', '-q', m], { allowFail: true })
    if (r.code !== 0) bad.push(`${m}: not loaded and modprobe cannot find it`)
  }
  return bad.length ? fail('modprobe -n', 'unknown modules', bad.join('\n')) : pass('modprobe -n', `${lines(f.content).length} modules known`)
}

/** rt_tables: "id name" lines, ids 1..2^31-1, no id or name twice. */
export function tableIds(ctx: Ctx): Map<string, string> {
  const ids = new Map<string, string>()
  for (const x of ctx.files.filter((y) => y.check === 'rt_tables')) {
    for (const l of lines(x.content)) {
      const [id, name] = l.trim().split(/\s+/)
      if (id && name) ids.set(name, id)
    }
  }
  return ids
}

async function rtTables(_ctx: Ctx, f: RenderedFile): Promise<Verdict> {
  const seenId = new Set<string>()
  const seenName = new Set<string>()
  const bad: string[] = []
  for (const l of lines(f.content)) {
    const m = /^\s*(\d+)\s+([A-Za-z][A-Za-z0-9_.-]*)\s*$/.exec(l)
    if (!m) bad.push(`not "id name": ${l}`)
    else if (seenId.has(m[1]!) || seenName.has(m[2]!)) bad.push(`declared twice: ${l}`)
    else {
      seenId.add(m[1]!)
      seenName.add(m[2]!)
    }
  }
  return bad.length ? fail('rt_tables syntax', `${bad.length} bad lines`, bad.join('\n')) : pass('rt_tables syntax', `${seenId.size} tables`)
}

/** rule-IF / route-IF: each line as network-scripts passes it to `ip rule add` / `ip route add`. */
async function ifFile(ctx: Ctx, f: RenderedFile): Promise<Verdict> {
  const ids = tableIds(ctx)
  const what = f.check === 'rule-if' ? 'rule' : 'route'
  const tool = `ip ${what} add (netns)`
  let n = 0
  for (const l of lines(f.content)) {
    const words = l.trim().split(/\s+/).map((w, i, all) => (all[i - 1] === 'table' && ids.has(w) ? ids.get(w)! : w))
    // hafw-routing has added the same routes already: replace proves the line just as well
    const r = await ctx.ns.run('ip', [what, what === 'rule' ? 'add' : 'replace', ...words])
    if (r.code !== 0) return fail(tool, `"${l.trim()}": exit ${r.code}`, out(r))
    n++
  }
  return pass(tool, `${n} line${n === 1 ? '' : 's'} accepted`)
}

export type Checker = (ctx: Ctx, f: RenderedFile) => Promise<Verdict>

async function script(ctx: Ctx, f: RenderedFile): Promise<Verdict> {
  const syntax = await shellSyntax(ctx, f)
  if (syntax) return syntax
  if (f.path === SCRIPTS.firewall) return firewallScript(ctx, f)
  if (f.path === SCRIPTS.routing) return routingScript(ctx, f)
  if (f.path === SCRIPTS.notify) return notifyScript(ctx, f)
  return pass('sh -n', 'syntax ok')
}

export const CHECKERS: Record<RenderedFile['check'], Checker> = {
  keepalived,
  conntrackd,
  iptables: firewallRules,
  ip6tables: firewallRules,
  nftables: firewallRules,
  script,
  unit,
  sysctl,
  modules,
  rt_tables: rtTables,
  'rule-if': ifFile,
  'route-if': ifFile,
}

/** Files that others depend on go first: the ruleset before its loader, conntrackd before hafw-notify. */
export function checkOrder(f: RenderedFile): number {
  if (f.path === SCRIPTS.notify) return 90
  const order: Partial<Record<RenderedFile['check'], number>> = { sysctl: 1, modules: 2, rt_tables: 3, iptables: 10, ip6tables: 10, nftables: 10, conntrackd: 80 }
  if (f.path === SCRIPTS.firewall) return 11
  if (f.path === SCRIPTS.routing) return 20
  if (f.check === 'rule-if' || f.check === 'route-if') return 21
  return order[f.check] ?? 50
}
