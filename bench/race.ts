/**
 * The failover race of LAB.md in numbers (root; ~15 min with the defaults).
 *
 *   npx tsc -b packages/cli && npx tsx bench/race.ts        # FLOWS=200 RUNS=20 UNPROTECTED_RUNS=5
 *
 * inventory/lab.yaml's firewall pair (own site, own state dir) is booted by the lab and
 * configured with `hafw apply`. Each run is a real drill (runDrillJob): FLOWS witness flows from
 * the probe client through the pair (a quarter each: TCP through the DNAT, TCP forwarded, UDP
 * through the DNAT, UDP forwarded; a message every 20 ms), a graceful failover (keepalived
 * stopped on the master), then the failback; resets, gaps and the commit as the drill measured them.
 * Drills run with force: a preflight that finds the pair not converged (conntrackd can leave a
 * few stale entries in the standby's external cache) is noted, not a reason to stop counting.
 *
 * Variants, in this order:
 * - "hafw": the configuration `hafw apply` put there (guard rules, loose=0); RUNS consecutive
 *   drills on the fresh pair, nothing done between them.
 * - "seed 001": the pair WITHOUT hafw's race protection, as seed 001 ran it: hafw's ruleset with
 *   the guard rules removed (no DROP of INVALID / non-SYN NEW packets to the VIPs, none of
 *   INVALID in FORWARD), INPUT open (the seed sets no INPUT rules) and nf_conntrack_tcp_loose
 *   at its kernel default (1). Loaded live with iptables-restore and sysctl, files untouched.
 * - "LAB.md": the same ruleset with nf_conntrack_tcp_loose=0, the finding's setting.
 * Before each run of an unprotected variant both nodes' external caches are flushed and
 * resynced: the reset flows leave entries behind that would fail the next drill's preflight.
 * These unprotected variants exist only in this file: hafw never renders them.
 *
 * Measured here (2 cores shared with other users, load 1-12; FLOWS=200: 50 TCP and 50 UDP through
 * the DNAT, 50 TCP and 50 UDP forwarded; one run of the whole bench, 19 min):
 *   hafw      20 consecutive drills: 0 flows reset (0 of 200 in each failover and each failback);
 *             data-plane gap 20-126 ms (worst 265 ms), worst TCP stall 254 ms; commit 14-66 ms
 *             (median 35) for 205-2070 entries; 18 passed, 2 failed verify after the failback
 *             (86 and 61 entries left in the standby's external cache at the 20 s deadline, gone
 *             by the next drill).
 *   seed 001  5 drills: 250 flows reset: every TCP flow through the DNAT (50 of 50) at every
 *             failback, none at the failovers.
 *   LAB.md    5 drills: 250 flows reset: every TCP flow through the DNAT at every failover
 *             (one run: 39 at the failover, the other 11 at the failback).
 *   Forwarded TCP flows and UDP survive in every variant: the race hits flows whose packets the
 *   new master must NAT before it has their entry.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parse, stringify } from 'yaml'
import { exec, silentProgress } from '@hafw/core'
import { runDrillJob, type DrillResult, type PhaseResult } from '@hafw/drill'
import { loadInventory } from '@hafw/inventory'
import { labDown, labExec, labUp } from '@hafw/lab'
import { stopEmbeddedRedis } from '@hafw/queue'
import { LAYOUTS, SCRIPTS } from '@hafw/render'
import { runBench } from './run.js'

const FLOWS = Number(process.env.FLOWS ?? 200)
const RUNS = Number(process.env.RUNS ?? 20)
const UNPROTECTED_RUNS = Number(process.env.UNPROTECTED_RUNS ?? 5)
const SITE = `race${process.pid}`
const NODES = ['fw1a', 'fw1b']
const RULES = LAYOUTS.debian.iptablesFull

const dir = mkdtempSync(join(tmpdir(), 'hafw-race-'))
const stateDir = join(dir, 'state')
const file = join(dir, 'lab.yaml')
process.env.HAFW_STATE_DIR = stateDir

const sh = async (node: string, cmd: string) => {
  const r = await labExec(SITE, node, ['sh', '-c', cmd], { allowFail: true, timeoutMs: 60_000 })
  if (r.code !== 0) throw new Error(`${node}: ${cmd}: exit ${r.code}: ${r.stderr}`)
  return r.stdout
}

/** hafw's ruleset without its race guards and with INPUT open (seed 001 has no INPUT rules). */
const UNGUARDED = `grep -v -E -- '-m conntrack --ctstate (INVALID|NEW) -j DROP$' ${RULES} | sed 's/^:INPUT DROP/:INPUT ACCEPT/' | iptables-restore`

interface Variant {
  name: string
  runs: number
  setup: string
  /** resynchronise both caches before each run (the unprotected variants leave reset flows behind) */
  resync: boolean
}
const RESYNC = `conntrackd -C ${LAYOUTS.debian.conntrackd} -f external && conntrackd -C ${LAYOUTS.debian.conntrackd} -n`
const VARIANTS: Variant[] = [
  { name: 'hafw', runs: RUNS, setup: `${SCRIPTS.firewall} >/dev/null && sysctl -q -p ${LAYOUTS.debian.sysctl}`, resync: false },
  { name: 'seed 001', runs: UNPROTECTED_RUNS, setup: `${UNGUARDED} && sysctl -qw net.netfilter.nf_conntrack_tcp_loose=1`, resync: true },
  { name: 'LAB.md', runs: UNPROTECTED_RUNS, setup: `${UNGUARDED} && sysctl -qw net.netfilter.nf_conntrack_tcp_loose=0`, resync: true },
]

interface Row {
  variant: string
  run: number
  verdict: string
  reasons: string[]
  phases: { reset: number; total: number; gap: number | null; tcpStall: number | null; commitMs: number | null; entries: number | null; failoverMs: number | null }[]
}

function phaseRow(p: PhaseResult | null) {
  if (!p) return { reset: 0, total: 0, gap: null, tcpStall: null, commitMs: null, entries: null, failoverMs: null }
  const tcp = p.per_flow.filter((f) => f.proto === 'tcp' && !f.reset).map((f) => f.max_gap_ms)
  return { reset: p.flows.reset, total: p.flows.total, gap: p.gap_ms, tcpStall: tcp.length ? Math.max(...tcp) : null, commitMs: p.commit.ms, entries: p.commit.entries, failoverMs: p.failover_ms }
}

const pad = (s: unknown, n: number) => String(s ?? '-').padStart(n)
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length ? s[Math.floor(s.length / 2)]! : NaN
}

async function main(): Promise<void> {
  const raw = parse(readFileSync('inventory/lab.yaml', 'utf8')) as { site: string; pairs: { name: string }[] }
  raw.site = SITE
  raw.pairs = raw.pairs.filter((p) => p.name === 'edge1')
  writeFileSync(file, stringify(raw))
  console.log(`race bench: ${FLOWS} witness flows, graceful failover + failback; ${UNPROTECTED_RUNS} run(s) per unprotected variant, ${RUNS} with hafw's configuration`)
  await labUp(await loadInventory(file), silentProgress, AbortSignal.timeout(540_000))
  const a = await exec(process.execPath, ['packages/cli/bin/run.js', 'apply', file, '--yes'], { allowFail: true, timeoutMs: 300_000 })
  if (a.code !== 0) throw new Error(`hafw apply failed:\n${a.stdout}\n${a.stderr}`)

  const rows: Row[] = []
  console.log(`\n${'variant'.padEnd(9)} ${'run'.padStart(3)}  ${'verdict'.padEnd(7)}  failover:${['reset', 'gap', 'tcp', 'commit', 'entries'].map((h) => h.padStart(8)).join('')}   failback:${['reset', 'gap', 'tcp', 'commit'].map((h) => h.padStart(8)).join('')}`)
  for (const v of VARIANTS) {
    for (const n of NODES) await sh(n, v.setup)
    for (let run = 1; run <= v.runs; run++) {
      if (v.resync) {
        for (const n of NODES) await sh(n, RESYNC)
        await new Promise((res) => setTimeout(res, 2000))
      }
      let r: DrillResult
      try {
        r = await runDrillJob({ file, pair: 'edge1', mode: 'graceful', failback: true, probeFlows: FLOWS, verifyDeadlineS: 20, force: true }, silentProgress, AbortSignal.timeout(300_000))
      } catch (e) {
        console.log(`${v.name.padEnd(9)} ${pad(run, 3)}  drill did not run: ${(e as Error).message.split('\n')[0]}`)
        continue
      }
      const row: Row = { variant: v.name, run, verdict: r.verdict, reasons: r.reasons, phases: [phaseRow(r.failover), phaseRow(r.failback)] }
      rows.push(row)
      const [fo, fb] = row.phases as [Row['phases'][0], Row['phases'][0]]
      console.log(
        `${v.name.padEnd(9)} ${pad(run, 3)}  ${r.verdict.padEnd(7)}           ${[`${fo.reset}/${fo.total}`, fo.gap, fo.tcpStall, fo.commitMs, fo.entries].map((x) => pad(x, 8)).join('')}            ${[`${fb.reset}/${fb.total}`, fb.gap, fb.tcpStall, fb.commitMs].map((x) => pad(x, 8)).join('')}`,
      )
      if (r.verdict !== 'pass') for (const why of r.reasons) console.log(`${' '.repeat(16)}${why.slice(0, 220)}`)
    }
  }

  console.log('\nsummary (gap: the UDP witnesses\' worst stall, the data plane; tcp: the worst TCP stall of a flow that was not reset; ms)')
  for (const v of VARIANTS) {
    const rs = rows.filter((r) => r.variant === v.name)
    const ph = rs.flatMap((r) => r.phases)
    const resets = rs.map((r) => r.phases.reduce((a, p) => a + p.reset, 0))
    const commits = ph.map((p) => p.commitMs).filter((x): x is number => x !== null)
    const gaps = ph.map((p) => p.gap).filter((x): x is number => x !== null)
    console.log(
      `  ${v.name.padEnd(9)} ${rs.length} drills: ${resets.reduce((a, b) => a + b, 0)} flows reset in total (per drill: ${resets.join(', ') || '-'}), ${rs.filter((r) => r.verdict === 'pass').length} passed; ` +
        `worst gap ${gaps.length ? Math.max(...gaps) : '-'} ms; commit median ${median(commits)} ms, max ${commits.length ? Math.max(...commits) : '-'} ms`,
    )
  }
  console.log(`load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`)
}

async function cleanup(): Promise<void> {
  await labDown(SITE, silentProgress).catch((e: Error) => console.error(`lab down: ${e.message}`))
  await stopEmbeddedRedis(join(stateDir, 'redis')).catch(() => undefined)
  rmSync(dir, { recursive: true, force: true })
}

runBench(main, cleanup)
