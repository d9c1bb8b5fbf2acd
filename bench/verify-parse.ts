/**
 * Parse and compare benchmark for @hafw/verify on a real conntrackd pair (root, ~2 min).
 *
 *   npx tsc -b bench && node bench/dist/verify-parse.js        # N=100000 RUNS=3 by default
 *
 * Two throwaway network namespaces joined by a veth run conntrackd 1.4.7 (FTFW over UDP).
 * `conntrack -R` loads N entries on the active side, the standby's external cache fills, then:
 * - raw: each dump command alone (wall, its CPU and peak RSS by GNU time, bytes);
 * - streamed parse: the same command piped into parseFlows in a fresh node process (wall, CPU and
 *   peak RSS of that process); the parser alone on the captured output (cold, one pass, as a
 *   verify run would), next to a saxes-based builder of the same fields for the XML forms;
 * - compare: both nodes' dumps spawned at once and streamed into compareFlows (wall against the
 *   two raw dumps run at once, CPU, peak RSS, most entries held), and the same comparison on
 *   captured output: hafw's own CPU when the dumps run on remote nodes.
 * Figures only, no assertions; medians of RUNS runs. The machine is shared: the load average is
 * printed, and CPU figures are steadier than wall times. Everything started is stopped by PID
 * and both namespaces are deleted, also on SIGINT/SIGTERM.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { exec } from '@hafw/core'
import { type Flow, compareFlows, parseConntrackdStats, parseFlows, createFlowParser } from '@hafw/verify'
import { SaxesParser } from 'saxes'

const N = Number(process.env.N ?? 100_000)
const RUNS = Number(process.env.RUNS ?? 3)
const FILTER = { ignoreAddresses: ['127.0.0.1', '192.168.250.1', '10.9.0.0/16'], acceptProtocols: ['TCP', 'UDP', 'ICMP'] }

type Cmd = string[]
interface ChildJob {
  kind: 'parse' | 'inmem' | 'saxes' | 'compare' | 'compare-captured' | 'idle'
  cmd?: Cmd
  active?: Cmd
  standby?: Cmd
}
interface ChildResult {
  wallMs: number
  /** user + system CPU of this node process over the measurement */
  cpuMs: number
  bytes: number
  flows: number
  maxRssKb: number
  extra?: unknown
}

// ---------------------------------------------------------------- child side (one measurement)

async function child(job: ChildJob): Promise<ChildResult> {
  const c0 = process.cpuUsage()
  const cpu = () => {
    const c = process.cpuUsage(c0)
    return (c.user + c.system) / 1000
  }
  if (job.kind === 'idle') return { wallMs: 0, cpuMs: 0, bytes: 0, flows: 0, maxRssKb: process.resourceUsage().maxRSS }
  if (job.kind === 'parse') {
    const t0 = performance.now()
    const p = spawn(job.cmd![0]!, job.cmd!.slice(1), { stdio: ['ignore', 'pipe', 'ignore'] })
    let bytes = 0
    p.stdout.on('data', (d: Buffer) => (bytes += d.length))
    let flows = 0
    for await (const batch of parseFlows(p.stdout).batches()) flows += batch.length
    await exited(p)
    return { wallMs: performance.now() - t0, cpuMs: cpu(), bytes, flows, maxRssKb: process.resourceUsage().maxRSS }
  }
  if (job.kind === 'inmem' || job.kind === 'saxes') {
    const chunks = await collect(job.cmd!)
    const bytes = chunks.reduce((n, c) => n + c.length, 0)
    const t0 = performance.now()
    const cStart = cpu()
    let flows = 0
    if (job.kind === 'inmem') {
      const p = createFlowParser(() => flows++)
      for (const c of chunks) p.write(c)
      p.end()
    } else flows = saxesParse(chunks)
    return { wallMs: performance.now() - t0, cpuMs: cpu() - cStart, bytes, flows, maxRssKb: process.resourceUsage().maxRSS }
  }
  if (job.kind === 'compare-captured') {
    // hafw's own cost when the dumps come from elsewhere: both outputs captured first, then timed
    const [a, s] = await Promise.all([collect(job.active!), collect(job.standby!)])
    const t0 = performance.now()
    const cStart = cpu()
    const r = await compareFlows(parseFlows(a), parseFlows(s), { activeFilter: FILTER, graceSeconds: 0 })
    return { wallMs: performance.now() - t0, cpuMs: cpu() - cStart, bytes: 0, flows: r.counts.active + r.counts.standby, maxRssKb: process.resourceUsage().maxRSS }
  }
  // compare: both dumps at once, as they would arrive from two nodes
  const t0 = performance.now()
  const a = spawn(job.active![0]!, job.active!.slice(1), { stdio: ['ignore', 'pipe', 'ignore'] })
  const s = spawn(job.standby![0]!, job.standby!.slice(1), { stdio: ['ignore', 'pipe', 'ignore'] })
  let bytes = 0
  a.stdout.on('data', (d: Buffer) => (bytes += d.length))
  s.stdout.on('data', (d: Buffer) => (bytes += d.length))
  const r = await compareFlows(parseFlows(a.stdout), parseFlows(s.stdout), { activeFilter: FILTER, graceSeconds: 0 })
  await Promise.all([exited(a), exited(s)])
  return {
    wallMs: performance.now() - t0,
    cpuMs: cpu(),
    bytes,
    flows: r.counts.active + r.counts.standby,
    maxRssKb: process.resourceUsage().maxRSS,
    extra: { counts: r.counts, converged: r.converged, peakHeld: r.peakHeld },
  }
}

async function collect(cmd: Cmd): Promise<Buffer[]> {
  const p = spawn(cmd[0]!, cmd.slice(1), { stdio: ['ignore', 'pipe', 'ignore'] })
  const out: Buffer[] = []
  for await (const c of p.stdout) out.push(c as Buffer)
  await exited(p)
  return out
}

function exited(p: ReturnType<typeof spawn>): Promise<number> {
  return new Promise((res) => (p.exitCode !== null ? res(p.exitCode) : p.once('close', (c) => res(c ?? -1))))
}

/** The same fields as FlowXmlParser, built from saxes events: the baseline the hand-written parser beats. */
function saxesParse(chunks: Buffer[]): number {
  const sax = new SaxesParser({ position: false })
  let flows = 0
  let f: Flow | null = null
  let dir = ''
  let text = ''
  let replyL3 = ''
  let reply = { src: '', dst: '' } as Flow['orig']
  sax.on('opentag', (t) => {
    text = ''
    if (t.name === 'flow') {
      f = { proto: '', protonum: -1, orig: { src: '', dst: '' } }
      reply = { src: '', dst: '' }
    } else if (t.name === 'meta') dir = String(t.attributes.direction)
    else if (f && t.name === 'layer4' && dir === 'original') f.protonum = Number(t.attributes.protonum)
    else if (t.name === 'layer3' && dir === 'reply') replyL3 = String(t.attributes.protonum)
    else if (f && t.name === 'assured') f.assured = true
    else if (f && t.name === 'unreplied') f.unreplied = true
  })
  sax.on('text', (t) => (text = t))
  sax.on('closetag', (t) => {
    if (!f) return
    const tuple = dir === 'original' ? f.orig : reply
    switch (t.name) {
      case 'src': tuple.src = text; break
      case 'dst': tuple.dst = text; break
      case 'sport': tuple.sport = Number(text); break
      case 'dport': tuple.dport = Number(text); break
      case 'state': f.state = text; break
      case 'timeout': f.timeout = Number(text); break
      case 'mark': f.mark = Number(text); break
      case 'zone': f.zone = Number(text); break
      case 'id': if (dir === 'independent') f.id = Number(text); break
      case 'flow':
        if (replyL3 !== '0' && reply.src) f.reply = reply
        flows++
        f = null
    }
  })
  // conntrackd -x prints bare <flow> elements: give saxes a root to parse them at all
  const bare = !chunks[0]?.toString('latin1', 0, 5).startsWith('<?xml')
  if (bare) sax.write('<r>')
  for (const c of chunks) sax.write(c.toString())
  if (bare) sax.write('</r>')
  sax.close()
  return flows
}

// ---------------------------------------------------------------- orchestrator

const tag = `hvb${process.pid}`
const NS_A = `${tag}a`
const NS_B = `${tag}b`
const pids: number[] = []
let dir = ''

async function up(): Promise<void> {
  dir = mkdtempSync(join(tmpdir(), 'hafw-verify-bench-'))
  await exec('ip', ['netns', 'add', NS_A])
  await exec('ip', ['netns', 'add', NS_B])
  await exec('ip', ['link', 'add', `${tag}x`, 'type', 'veth', 'peer', 'name', `${tag}y`])
  for (const [ns, ifc, addr] of [[NS_A, `${tag}x`, '192.168.250.1/30'], [NS_B, `${tag}y`, '192.168.250.2/30']] as const) {
    await exec('ip', ['link', 'set', ifc, 'netns', ns])
    await exec('ip', ['-n', ns, 'link', 'set', ifc, 'name', 'sync0'])
    await exec('ip', ['-n', ns, 'addr', 'add', addr, 'dev', 'sync0'])
    await exec('ip', ['-n', ns, 'link', 'set', 'sync0', 'up'])
    await exec('ip', ['-n', ns, 'link', 'set', 'lo', 'up'])
  }
  for (const [name, self, peer, ns] of [['a', '192.168.250.1', '192.168.250.2', NS_A], ['b', '192.168.250.2', '192.168.250.1', NS_B]] as const) {
    writeFileSync(join(dir, `${name}.conf`), conntrackdConf(name, self, peer))
    const p = spawn('ip', ['netns', 'exec', ns, 'conntrackd', '-C', join(dir, `${name}.conf`)], { stdio: 'ignore' })
    pids.push(p.pid!) // `ip netns exec` execs conntrackd: same PID
  }
  for (const name of ['a', 'b']) await waitFor(async () => (await ctd(name, ['-s'])).code === 0, 10_000, `conntrackd ${name} did not start`)
}

function conntrackdConf(name: string, self: string, peer: string): string {
  return `Sync {
  Mode FTFW { }
  UDP {
    IPv4_address ${self}
    IPv4_Destination_Address ${peer}
    Port 3780
    Interface sync0
    SndSocketBuffer 24985600
    RcvSocketBuffer 24985600
    Checksum on
  }
}
General {
  HashSize 32768
  HashLimit 524288
  LogFile ${join(dir, name + '.log')}
  Syslog off
  LockFile ${join(dir, name + '.lock')}
  UNIX { Path ${join(dir, name + '.ctl')} }
  NetlinkBufferSize 2097152
  NetlinkBufferSizeMaxGrowth 134217728
  Filter From Userspace {
    Protocol Accept { TCP UDP ICMP }
    Address Ignore {
      IPv4_address 127.0.0.1
      IPv4_address ${self}
      IPv4_address 10.9.0.0/16
    }
  }
}
`
}

function ctd(name: string, args: string[]) {
  return exec('ip', ['netns', 'exec', name === 'a' ? NS_A : NS_B, 'conntrackd', '-C', join(dir, `${name}.conf`), ...args], { allowFail: true })
}

async function down(): Promise<void> {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGTERM')
    } catch {}
  }
  for (const pid of pids) await waitFor(async () => !alive(pid), 10_000, `conntrackd ${pid} did not stop`).catch(() => process.kill(pid, 'SIGKILL'))
  for (const ns of [NS_A, NS_B]) await exec('ip', ['netns', 'del', ns], { allowFail: true })
  await exec('ip', ['link', 'del', `${tag}x`], { allowFail: true }) // only left if setup failed before moving it
  if (dir) rmSync(dir, { recursive: true, force: true })
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

async function waitFor(ok: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(what)
    await new Promise((r) => setTimeout(r, 100))
  }
}

/** N `conntrack -I` lines: 95% TCP ESTABLISHED, 5% UDP, a mark on 10%, DNAT on 1%. */
function entries(n: number): string {
  const lines: string[] = []
  for (let i = 0; i < n; i++) {
    const src = `172.${16 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`
    const sport = 1024 + (i % 60000)
    const mark = i % 10 === 0 ? ` --mark ${1 + (i % 7)}` : ''
    if (i % 20 === 0) lines.push(`-I -p udp -s ${src} -d 192.168.20.53 --sport ${sport} --dport 53 -t 180 -u SEEN_REPLY,ASSURED${mark}`)
    else if (i % 100 === 1)
      lines.push(`-I -p tcp -s ${src} -d 192.168.0.60 --sport ${sport} --dport 25 -r 192.168.1.60 -q ${src} --reply-port-src 25 --reply-port-dst ${sport} --state ESTABLISHED -t 432000 -u SEEN_REPLY,ASSURED${mark}`)
    else lines.push(`-I -p tcp -s ${src} -d 192.168.20.${1 + (i % 50)} --sport ${sport} --dport 443 --state ESTABLISHED -t 432000 -u SEEN_REPLY,ASSURED${mark}`)
  }
  return lines.join('\n') + '\n'
}

const inA = (...c: string[]): Cmd => ['ip', 'netns', 'exec', NS_A, ...c]
const inB = (...c: string[]): Cmd => ['ip', 'netns', 'exec', NS_B, ...c]

/** A dump command alone: wall time, bytes, its own CPU and peak RSS (GNU time). */
async function raw(cmd: Cmd): Promise<{ wallMs: number; cpuMs: number; bytes: number; rssKb: number }> {
  const t0 = performance.now()
  const p = spawn(cmd[0]!, [...cmd.slice(1, 4), '/usr/bin/time', '-f', 'RSS %M CPU %U %S', ...cmd.slice(4)], { stdio: ['ignore', 'pipe', 'pipe'] })
  let bytes = 0
  let err = ''
  p.stdout.on('data', (d: Buffer) => (bytes += d.length))
  p.stderr.on('data', (d: Buffer) => (err += d))
  await exited(p)
  const m = /RSS (\d+) CPU ([\d.]+) ([\d.]+)/.exec(err)
  return { wallMs: performance.now() - t0, cpuMs: m ? (Number(m[2]) + Number(m[3])) * 1000 : NaN, bytes, rssKb: m ? Number(m[1]) : NaN }
}

async function rawPair(a: Cmd, b: Cmd): Promise<number> {
  const t0 = performance.now()
  await Promise.all([raw(a), raw(b)])
  return performance.now() - t0
}

async function inChild(job: ChildJob): Promise<ChildResult> {
  const r = await exec(process.execPath, [process.argv[1]!, '--child', JSON.stringify(job)])
  return JSON.parse(r.stdout) as ChildResult
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]!
}

async function repeat<T>(f: () => Promise<T>, pick: (t: T) => number): Promise<T> {
  const rs: T[] = []
  for (let i = 0; i < RUNS; i++) rs.push(await f())
  const m = median(rs.map(pick))
  return rs.find((r) => pick(r) === m)!
}

const mb = (b: number) => (b / 1e6).toFixed(1)
const ms = (x: number) => `${x.toFixed(0)} ms`

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('run as root: the benchmark creates network namespaces')
  const stop = () => void down().finally(() => process.exit(130))
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  try {
    await up()
    const file = join(dir, 'entries.txt')
    writeFileSync(file, entries(N))
    let t0 = performance.now()
    await exec('ip', ['netns', 'exec', NS_A, 'conntrack', '-R', file])
    console.log(`conntrack -R: ${N} entries in ${ms(performance.now() - t0)}`)
    t0 = performance.now()
    let ext = 0
    await waitFor(async () => (ext = parseConntrackdStats((await ctd('b', ['-s'])).stdout).external?.active ?? 0) >= N, 120_000, `standby external cache stuck at ${ext}/${N}`).catch((e: Error) =>
      console.log(`warning: ${e.message}`),
    )
    console.log(`standby external cache: ${ext} entries after ${ms(performance.now() - t0)}`)
    const idle = await inChild({ kind: 'idle' })
    console.log(`node baseline peak RSS: ${(idle.maxRssKb / 1024).toFixed(0)} MB; medians of ${RUNS} runs; load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}\n`)

    const dumps: [string, Cmd][] = [
      ['conntrack -L -o xml', inA('conntrack', '-L', '-o', 'xml')],
      ['conntrack -L', inA('conntrack', '-L')],
      ['conntrackd -i -x', inA('conntrackd', '-C', join(dir, 'a.conf'), '-i', '-x')],
      ['conntrackd -i', inA('conntrackd', '-C', join(dir, 'a.conf'), '-i')],
      ['conntrackd -e -x', inB('conntrackd', '-C', join(dir, 'b.conf'), '-e', '-x')],
      ['conntrackd -e', inB('conntrackd', '-C', join(dir, 'b.conf'), '-e')],
    ]
    const w = (x: number) => x.toFixed(0).padStart(5)
    console.log('wall = elapsed ms, cpu = user+sys ms of that process, RSS = its peak MB')
    console.log('dump              |  raw: wall   cpu     MB RSS | streamed parse: wall   cpu  kflows/s RSS | parser alone: cpu  MB/s | saxes: cpu  MB/s')
    for (const [name, cmd] of dumps) {
      const r = await repeat(() => raw(cmd), (x) => x.wallMs)
      const p = await repeat(() => inChild({ kind: 'parse', cmd }), (x) => x.wallMs)
      const m = await repeat(() => inChild({ kind: 'inmem', cmd }), (x) => x.cpuMs)
      const isXml = name.endsWith('-x') || name.endsWith('xml')
      const sx = isXml ? await repeat(() => inChild({ kind: 'saxes', cmd }), (x) => x.cpuMs) : undefined
      console.log(
        `${name.padEnd(17)} | ${w(r.wallMs)} ${w(r.cpuMs)} ${mb(r.bytes).padStart(6)} ${w(r.rssKb / 1024)} |` +
          `                ${w(p.wallMs)} ${w(p.cpuMs)} ${w(p.flows / p.wallMs)} ${w(p.maxRssKb / 1024)} |` +
          `              ${w(m.cpuMs)} ${w(m.bytes / 1e3 / m.cpuMs)} |` +
          (sx ? `        ${w(sx.cpuMs)} ${w(sx.bytes / 1e3 / sx.cpuMs)}` : ''),
      )
    }

    console.log('\ncompare                         | raw pair: wall | live, both dumps at once: wall  cpu overhead RSS held | captured: cpu | result')
    const pairs: [string, Cmd, Cmd][] = [
      ['kernel text   vs external XML', inA('conntrack', '-L'), inB('conntrackd', '-C', join(dir, 'b.conf'), '-e', '-x')],
      ['kernel XML    vs external XML', inA('conntrack', '-L', '-o', 'xml'), inB('conntrackd', '-C', join(dir, 'b.conf'), '-e', '-x')],
      ['kernel text   vs external text', inA('conntrack', '-L'), inB('conntrackd', '-C', join(dir, 'b.conf'), '-e')],
      ['internal text vs external text', inA('conntrackd', '-C', join(dir, 'a.conf'), '-i'), inB('conntrackd', '-C', join(dir, 'b.conf'), '-e')],
    ]
    for (const [name, a, b] of pairs) {
      const xs: number[] = []
      for (let i = 0; i < RUNS; i++) xs.push(await rawPair(a, b))
      const rp = median(xs)
      const c = await repeat(() => inChild({ kind: 'compare', active: a, standby: b }), (x) => x.wallMs)
      const cc = await repeat(() => inChild({ kind: 'compare-captured', active: a, standby: b }), (x) => x.cpuMs)
      const { counts, converged, peakHeld } = c.extra as { counts: { matched: number; missing: number; extra: number; mismatched: number }; converged: boolean; peakHeld: number }
      console.log(
        `${name.padEnd(31)} |          ${w(rp)} |                          ${w(c.wallMs)} ${w(c.cpuMs)} ${(((c.wallMs - rp) / rp) * 100).toFixed(0).padStart(6)}% ${w(c.maxRssKb / 1024)} ${w(peakHeld / 1000)}k |         ${w(cc.cpuMs)} | ` +
          `converged=${converged} matched=${counts.matched} missing=${counts.missing} extra=${counts.extra} mismatched=${counts.mismatched}`,
      )
    }
  } finally {
    await down()
  }
}

if (process.argv[2] === '--child') {
  child(JSON.parse(process.argv[3]!) as ChildJob).then((r) => process.stdout.write(JSON.stringify(r)))
} else {
  main().catch((e: unknown) => {
    console.error(e instanceof Error ? e.message : e)
    process.exitCode = 1
  })
}
