/**
 * `hafw verify` on a lab pair holding N conntrack entries (root; ~2 min).
 *
 *   npx tsc -b bench && node bench/dist/verify.js        # SIZES=25000,100000 RUNS=5 by default
 *
 * inventory/lab.yaml's firewall pair (own site, own state dir) is booted by the lab and
 * configured with `hafw apply`; `conntrack -R` loads the entries on the active node and
 * conntrackd syncs them into the standby's external cache. Then, per size, in the same run:
 * - raw, on the nodes: `conntrack -L` on the active and `conntrackd -e` on the standby, alone and
 *   at once, output to /dev/null, timed on the node (the commands' own time);
 * - raw over SSH: the same two commands at once over the same kind of sessions verify uses, the
 *   output read and dropped by this process (with the SSH connects, and on sessions already open);
 * - verify: the operation (verifyModel) end to end in a fresh node process: connect, probe both
 *   nodes, stream both dumps into compareFlows, sample conntrackd -s, settle the sync link's
 *   liveness; its wall time and the process's peak RSS against an idle process that loaded the
 *   same modules and model and probed the same nodes (the fixed cost);
 * - the `hafw verify` command (CLI start, job queue, embedded Redis), once.
 * Medians of RUNS (and the worst verify). No assertions. The machine is shared: the load average
 * is printed. Everything started is stopped (the lab, the embedded Redis), also on SIGINT.
 *
 * Measured here (2 cores shared by the nodes, the controller and other users; load 2-3; three runs):
 *   100,000 entries: verify 1.14-1.39 s median (worst 1.59 s), raw dumps over SSH with the connects
 *   0.73-0.86 s (0.61-0.72 s on open sessions; the commands' own time at once 0.40-0.42 s):
 *   overhead 53-69%. Peak RSS +39-49 MB over the idle process (91-94 MB), compareFlows holding
 *   at most 61-68k entries; the dumps are 27 MB of text.
 *   25,000 entries: verify 1.09-1.24 s, most of it waiting for the standby's first sync packet
 *   (FTFW sends one a second; the dumps take 0.3-0.4 s). `hafw verify` from the shell: 2.0-2.3 s.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parse, stringify } from 'yaml'
import { exec, silentProgress } from '@hafw/core'
import { loadInventory, type Model } from '@hafw/inventory'
import { applyOverlay, labDown, labExec, labUp, readOverlayFile, overlayPath } from '@hafw/lab'
import { stopEmbeddedRedis } from '@hafw/queue'
import { SessionPool, StatusWatcher, dumpCommand, parseConntrackdStats, verifyModel } from '@hafw/verify'

const SIZES = (process.env.SIZES ?? '25000,100000').split(',').map(Number)
const RUNS = Number(process.env.RUNS ?? 5)
const SITE = `bv${process.pid}`
const CONF = '/etc/conntrackd/conntrackd.conf'
const ACTIVE = 'fw1a'
const STANDBY = 'fw1b'

interface ChildJob {
  kind: 'verify' | 'idle'
  file: string
  overlay: string
  source?: 'kernel' | 'internal'
}
interface ChildResult {
  ms: number
  maxRssKb: number
  peakHeapMb: number
  ok?: boolean
  converged?: boolean | null
  matched?: number
  peakHeld?: number
  polls?: number
  problems?: string[]
  dumps?: { node: string; kind: string; bytes: number; ms: number }[]
}

// ---------------------------------------------------------------- child side (one measurement)

async function child(job: ChildJob): Promise<ChildResult> {
  const model = applyOverlay(await loadInventory(job.file), await readOverlayFile(job.overlay))
  let peakHeap = 0
  const sampler = setInterval(() => (peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed)), 10)
  const signal = AbortSignal.timeout(120_000)
  const t0 = performance.now()
  try {
    if (job.kind === 'idle') {
      // the fixed cost: modules, model, two SSH sessions and a probe of each node
      const w = new StatusWatcher(model, { pairs: ['edge1'] }, silentProgress, signal)
      await w.refresh()
      await w.close()
      return { ms: performance.now() - t0, maxRssKb: process.resourceUsage().maxRSS, peakHeapMb: peakHeap / 2 ** 20 }
    }
    const r = await verifyModel(model, { pairs: ['edge1'], deadline: 20, grace: 5, source: job.source ?? 'kernel' }, silentProgress, signal)
    const p = r.pairs[0]!
    return {
      ms: performance.now() - t0,
      maxRssKb: process.resourceUsage().maxRSS,
      peakHeapMb: peakHeap / 2 ** 20,
      ok: p.ok,
      converged: p.converged,
      matched: p.counts.matched,
      peakHeld: p.peakHeld,
      polls: p.polls,
      problems: p.problems.map((x) => x.message),
      dumps: p.dumps.map((d) => ({ node: d.node, kind: d.kind, bytes: d.bytes, ms: d.ms })),
    }
  } finally {
    clearInterval(sampler)
  }
}

function inChild(job: ChildJob): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [new URL(import.meta.url).pathname, '--child', JSON.stringify(job)], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    p.stdout.on('data', (d: Buffer) => (out += d))
    p.on('error', reject)
    p.on('close', (code) => (code === 0 ? resolve(JSON.parse(out) as ChildResult) : reject(new Error(`child ${job.kind} exit ${code}: ${out}`))))
  })
}

// ---------------------------------------------------------------- parent side

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!
const ms = (x: number) => `${Math.round(x)} ms`
const mb = (kb: number) => `${(kb / 1024).toFixed(0)} MB`

/** N `conntrack -I` lines from index `from`: 95% TCP ESTABLISHED, 5% UDP, a mark on 10%, DNAT on 1%. */
function entries(from: number, n: number): string {
  const lines: string[] = []
  for (let i = from; i < from + n; i++) {
    const src = `172.${16 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`
    const sport = 1024 + (i % 60000)
    const mark = i % 10 === 0 ? ` --mark ${1 + (i % 7)}` : ''
    if (i % 20 === 0) lines.push(`-I -p udp -s ${src} -d 192.168.20.53 --sport ${sport} --dport 53 -t 3600 -u SEEN_REPLY,ASSURED${mark}`)
    else if (i % 100 === 1)
      lines.push(`-I -p tcp -s ${src} -d 192.168.10.60 --sport ${sport} --dport 25 -r 192.168.11.60 -q ${src} --reply-port-src 25 --reply-port-dst ${sport} --state ESTABLISHED -t 432000 -u SEEN_REPLY,ASSURED${mark}`)
    else lines.push(`-I -p tcp -s ${src} -d 192.168.20.${1 + (i % 50)} --sport ${sport} --dport 443 --state ESTABLISHED -t 432000 -u SEEN_REPLY,ASSURED${mark}`)
  }
  return lines.join('\n') + '\n'
}

const onNode = (node: string, script: string, input?: string) => labExec(SITE, node, ['sh', '-c', script], { timeoutMs: 120_000, ...(input !== undefined ? { input } : {}) })

/** The command's own wall time on the node, output to /dev/null. */
async function timedOnNode(node: string, cmd: string): Promise<number> {
  const r = await onNode(node, `t0=$(date +%s%N); ${cmd} >/dev/null 2>&1; t1=$(date +%s%N); echo $(( (t1 - t0) / 1000 ))`)
  return Number(r.stdout.trim()) / 1000
}

async function counts(): Promise<{ internal: number; external: number }> {
  const [a, b] = await Promise.all([onNode(ACTIVE, `conntrackd -C ${CONF} -s`), onNode(STANDBY, `conntrackd -C ${CONF} -s`)])
  return { internal: parseConntrackdStats(a.stdout).internal?.active ?? 0, external: parseConntrackdStats(b.stdout).external?.active ?? 0 }
}

/** Both dumps at once over SSH, output read and dropped here; with or without connecting first. */
async function rawOverSsh(model: Model, pool?: SessionPool): Promise<{ ms: number; bytes: number }> {
  const t0 = performance.now()
  const own = pool ?? new SessionPool(model)
  const pair = model.pairs[0]!
  let bytes = 0
  try {
    await Promise.all(
      [
        [ACTIVE, dumpCommand('kernel', CONF)],
        [STANDBY, dumpCommand('external', CONF)],
      ].map(([name, cmd]) =>
        own.run(pair.nodes.find((n) => n.name === name)!, async (s) => {
          const r = await s.execStream(cmd!, { onStdout: (c) => void (bytes += c.length) })
          if (r.code !== 0) throw new Error(`${name}: ${cmd}: exit ${r.code}`)
        }),
      ),
    )
    return { ms: performance.now() - t0, bytes }
  } finally {
    if (!pool) await own.close()
  }
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('run as root (the lab boots containers)')
  const dir = mkdtempSync(join(tmpdir(), 'hafw-benchverify-'))
  const stateDir = join(dir, 'state')
  process.env.HAFW_STATE_DIR = stateDir
  const file = join(dir, 'lab.yaml')
  const raw = parse(readFileSync('inventory/lab.yaml', 'utf8')) as { site: string; pairs: { name: string }[] }
  raw.site = SITE
  raw.pairs = raw.pairs.filter((p) => p.name === 'edge1')
  writeFileSync(file, stringify(raw))
  let up = false
  const cleanup = async () => {
    if (up) await labDown(SITE, silentProgress).catch((e: Error) => console.error(`lab down: ${e.message}`))
    up = false
    await stopEmbeddedRedis(join(stateDir, 'redis')).catch(() => undefined)
    rmSync(dir, { recursive: true, force: true })
  }
  const onSignal = () => void cleanup().then(() => process.exit(130))
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  try {
    const base = await loadInventory(file)
    console.log(`load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}; sizes ${SIZES.join(', ')}; ${RUNS} runs each`)
    up = true
    await labUp(base, silentProgress, AbortSignal.timeout(540_000))
    const a = await exec(process.execPath, ['packages/cli/bin/run.js', 'apply', file, '--yes'], { allowFail: true, timeoutMs: 300_000 })
    if (a.code !== 0) throw new Error(`hafw apply failed:\n${a.stdout}\n${a.stderr}`)
    const overlay = overlayPath(SITE)
    const model = applyOverlay(base, await readOverlayFile(overlay))
    const job = { file, overlay }

    let loaded = 0
    for (const n of SIZES) {
      // grow the table to n entries on the active node; conntrackd syncs them to the standby
      let t0 = performance.now()
      await onNode(ACTIVE, 'cat > /tmp/ct.txt && conntrack -R /tmp/ct.txt >/dev/null 2>&1; rm -f /tmp/ct.txt', entries(loaded, n - loaded))
      const loadMs = performance.now() - t0
      loaded = n
      t0 = performance.now()
      for (let c = await counts(); c.internal < n || c.external < c.internal; c = await counts()) {
        if (performance.now() - t0 > 60_000) throw new Error(`sync did not complete: ${JSON.stringify(c)}`)
        await new Promise((r) => setTimeout(r, 100))
      }
      const c = await counts()
      console.log(`\n== ${n} entries: conntrack -R ${ms(loadMs)}, external cache full ${ms(performance.now() - t0)} later (internal ${c.internal}, external ${c.external})`)

      const kernelAlone: number[] = []
      const externalAlone: number[] = []
      const atOnce: number[] = []
      const sshCold: number[] = []
      const sshWarm: number[] = []
      let bytes = 0
      const pool = new SessionPool(model)
      for (let r = 0; r < RUNS; r++) {
        kernelAlone.push(await timedOnNode(ACTIVE, dumpCommand('kernel', CONF)))
        externalAlone.push(await timedOnNode(STANDBY, dumpCommand('external', CONF)))
        const both = await Promise.all([timedOnNode(ACTIVE, dumpCommand('kernel', CONF)), timedOnNode(STANDBY, dumpCommand('external', CONF))])
        atOnce.push(Math.max(...both))
        sshCold.push((await rawOverSsh(model)).ms)
        const w = await rawOverSsh(model, pool)
        sshWarm.push(w.ms)
        bytes = w.bytes
      }
      await pool.close()
      const idle: ChildResult[] = []
      const runs: ChildResult[] = []
      for (let r = 0; r < RUNS; r++) {
        idle.push(await inChild({ kind: 'idle', ...job }))
        runs.push(await inChild({ kind: 'verify', ...job }))
      }
      const internal = await inChild({ kind: 'verify', source: 'internal', ...job })
      const v = median(runs.map((x) => x.ms))
      const worst = Math.max(...runs.map((x) => x.ms))
      const rssIdle = median(idle.map((x) => x.maxRssKb))
      const rss = median(runs.map((x) => x.maxRssKb))
      const last = runs.at(-1)!
      console.log(`raw on the nodes: conntrack -L ${ms(median(kernelAlone))}, conntrackd -e ${ms(median(externalAlone))}; both at once ${ms(median(atOnce))}`)
      console.log(`raw over SSH, both at once, ${(bytes / 2 ** 20).toFixed(1)} MB: ${ms(median(sshWarm))} on open sessions, ${ms(median(sshCold))} with the connects`)
      console.log(
        `verify (operation, fresh process): median ${ms(v)}, worst ${ms(worst)}; ${runs.every((x) => x.ok && x.converged) ? 'converged every run' : `NOT OK: ${JSON.stringify(runs.map((x) => [x.converged, x.problems]))}`}; ` +
          `${last.matched} matched, ${last.polls} poll(s), most entries held ${last.peakHeld}`,
      )
      console.log(`  its dumps (channel open -> end, parsed and compared as they arrive): ${last.dumps!.map((d) => `${d.node} ${d.kind} ${(d.bytes / 2 ** 20).toFixed(1)} MB ${d.ms} ms`).join(', ')}`)
      console.log(`  overhead over the raw dumps over SSH with connects: ${(((v - median(sshCold)) / median(sshCold)) * 100).toFixed(0)}% (median), over the commands' own time at once: ${(((v - median(atOnce)) / median(atOnce)) * 100).toFixed(0)}%`)
      console.log(`  peak RSS ${mb(rss)} vs ${mb(rssIdle)} idle (same modules, model, sessions and probes): +${mb(rss - rssIdle)} for ${n} entries; peak heap ${median(runs.map((x) => x.peakHeapMb)).toFixed(0)} MB vs ${median(idle.map((x) => x.peakHeapMb)).toFixed(0)} MB`)
      console.log(`verify --source internal (conntrackd -i as the active side): ${ms(internal.ms)}, ${internal.converged ? 'converged' : 'NOT converged'}, peak RSS ${mb(internal.maxRssKb)}`)
    }
    const t0 = performance.now()
    const cli = await exec(process.execPath, ['packages/cli/bin/run.js', 'verify', file, '--json'], { allowFail: true, timeoutMs: 120_000 })
    const cliMs = performance.now() - t0
    const j = JSON.parse(cli.stdout) as { ok: boolean; pairs: { ms: number }[] }
    console.log(`\nhafw verify (CLI: node + oclif start, job on the embedded queue, the operation): ${ms(cliMs)} wall, exit ${cli.code}, the pair took ${ms(j.pairs[0]!.ms)}`)
    console.log(`load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`)
  } finally {
    await cleanup()
  }
}

if (process.argv[2] === '--child') {
  child(JSON.parse(process.argv[3]!) as ChildJob).then(
    (r) => process.stdout.write(JSON.stringify(r)),
    (e: Error) => {
      process.stderr.write(`${e.stack}\n`)
      process.exit(1)
    },
  )
} else {
  main().catch((e: Error) => {
    console.error(e.stack)
    process.exitCode = 1
  })
}
