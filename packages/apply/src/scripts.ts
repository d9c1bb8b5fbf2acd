import { dirname, basename } from 'node:path'
import type { RenderedFile } from '@hafw/render'
import { fenceLines, forEachGeneration, GENERATIONS, liveFunctions, lockedLines, NODE_DIR, LIVE_KINDS, type Backend, type FileChange, type ServiceStep } from '@hafw/plan'
import { shellQuote as q } from '@hafw/transport'

/*
 * The shell scripts apply runs on a node. Each is built here from data (pure), sent as the
 * stdin of one `sh -s`, and only uses POSIX sh, coreutils, util-linux (flock) and systemd.
 *
 * On the node, /var/lib/hafw/generations/<n>/ holds:
 *   files/<path>     every file of generation n (what `hafw rollback --to n` restores)
 *   manifest.json    path, mode, owner, service, action, check of each file
 *   before/<path>    the changed files as they were before the swap; "absent" lists the new ones
 *   ruleset.save     the live ruleset before the swap, when its rollback restores it: no
 *                    loader existed before (with one, the rollback runs it instead)
 *   rollback.sh      restores "before", re-runs the services, undoes enable/start; armed as a
 *                    transient systemd timer before the swap, disarmed by confirm
 *   confirmed | rolled-back    how the generation ended; live/<kind> recorded at confirm
 * /var/lib/hafw/current names the generation in force; /var/lib/hafw/lock serialises;
 * /var/lib/hafw/fence holds the highest fencing token a job has changed the node with.
 */

const HEAD = ['set -u', 'PATH=/usr/sbin:/usr/bin:/sbin:/bin', 'export PATH', `G=${GENERATIONS}`]
export const KEEP_GENERATIONS = 5

/** The temporary name of a staged file: in the target's own directory (rename stays atomic), never matching *.conf. */
export const stagedPath = (path: string, gen: number) => `${dirname(path)}/.${basename(path)}.hafw-${gen}`

export const timerUnit = (gen: number) => `hafw-rollback-${gen}`

export interface StageSpec {
  gen: number
  /** the generation in force now (null on a node hafw never touched) */
  prev: number | null
  backend: Backend
  files: RenderedFile[]
  changes: FileChange[]
  manifestJson: string
  rollback: string
  /** keep the live ruleset for the rollback (saveRuleset) */
  saveRuleset: boolean
  /** the job's fencing token for the pair */
  fence?: number
}

/**
 * Whether a generation's rollback needs the ruleset as it is before the swap: it reloads the
 * firewall and no executable loader exists now to do it with (after the rollback, the node
 * has the files it has now).
 */
export function saveRuleset(steps: Pick<ServiceStep, 'service' | 'command'>[], files: Record<string, { exists: boolean; mode?: string }>): boolean {
  const loader = steps.find((st) => st.service === 'firewall')?.command[0]
  if (loader === undefined) return false
  const f = files[loader]
  return !(f?.exists && (parseInt(f.mode ?? '0', 8) & 0o111) !== 0)
}

/** Shell command that proves a staged file with the tool that will load it. */
function checkCommand(f: RenderedFile, staged: string): string | null {
  switch (f.check) {
    case 'keepalived':
      return `keepalived -t -f ${q(staged)}`
    case 'iptables':
    case 'ip6tables':
      return `${f.check}-restore ${/^:HAFW-/m.test(f.content) ? '--noflush ' : ''}--test ${q(staged)}`
    case 'nftables':
      return `nft -c -f ${q(staged)}`
    case 'script':
      return `sh -n ${q(staged)}`
    default:
      return null
  }
}

/** Write a file with the shell's own printf (a builtin: no process per file); %s passes every byte but NUL. */
const writeFile = (target: string, content: string) => `printf '%s' ${q(content)} > ${target}`

/**
 * Upload and check, one round trip: write generation <gen> (all files, manifest, rollback
 * script), keep the current version of every changed file, stage each changed file next to its
 * target, fsync, then run the real tools on the staged copies. Nothing in force changes.
 * Exit 3 when a check fails ("@@check FAIL <path> <command>" then the tool's output).
 */
export function stageScript(s: StageSpec): string {
  const W = `"$G/${s.gen}.tmp"`
  // (one program per step where the shell alone cannot do it: each start costs milliseconds of CPU)
  const L: string[] = [...HEAD, ...lockedLines(s.fence), 'set -e', `[ ! -e ${W} ] || rm -rf ${W}`]
  L.push(`mkdir -p ${W}/before ${W}/live ${[...new Set(s.files.map((f) => `${W}/files${q(dirname(f.path))}`))].join(' ')}`)
  for (const f of s.files) L.push(writeFile(`${W}/files${q(f.path)}`, f.content))
  L.push(writeFile(`${W}/manifest.json`, s.manifestJson), writeFile(`${W}/rollback.sh`, s.rollback), `: > ${W}/absent`)
  if (s.prev !== null) L.push(`echo ${s.prev} > ${W}/prev`)
  if (s.saveRuleset) {
    L.push(
      s.backend === 'iptables'
        ? `iptables-save > ${W}/ruleset.save 2>/dev/null || true; ip6tables-save > ${W}/ruleset6.save 2>/dev/null || true`
        : `nft list ruleset > ${W}/ruleset.save 2>/dev/null || true`,
    )
  }
  // the changed files as they are, in one copy (GNU cp --parents: before/<path>); the new ones listed in "absent"
  if (s.changes.length) {
    L.push(
      'set --',
      `for p in ${s.changes.map((c) => q(c.path)).join(' ')}; do if [ -e "$p" ]; then set -- "$@" "$p"; else printf '%s\\n' "$p" >> ${W}/absent; fi; done`,
      // from / : coreutils 9.1 resolves the parents it preserves against the working directory
      `[ $# -eq 0 ] || ( cd / && cp -p --parents -- "$@" ${W}/before )`,
    )
  }
  const staged: string[] = []
  for (const c of s.changes) {
    const p = q(c.path)
    if (c.change === 'metadata') continue
    const st = q(stagedPath(c.path, s.gen))
    const [user, group] = c.owner.split(':')
    // one process: the target's directory, the copy, its mode and owner
    L.push(`install -D -m ${c.mode} -o ${q(user!)} -g ${q(group ?? user!)} -- ${W}/files${p} ${st}`)
    staged.push(st)
  }
  // fsync the staged files before a rename can point at them. Not a global `sync`: on a busy
  // machine that flushes everyone's dirty data (measured here: seconds of kernel writeback per
  // rollout). The generation's own copies reach the disk with normal writeback; until then the
  // page cache serves the rollback (its timer does not outlive a reboot either).
  if (staged.length) L.push(`sync -- ${staged.join(' ')}`)
  L.push('set +e', 'failed=0')
  for (const c of s.changes) {
    if (c.change === 'metadata') continue
    const f = s.files.find((x) => x.path === c.path)!
    const cmd = checkCommand(f, stagedPath(c.path, s.gen))
    if (!cmd) continue
    L.push(`out=$(${cmd} 2>&1); rc=$?; if [ $rc -ne 0 ] || { [ ${q(f.check)} = keepalived ] && [ -n "$out" ]; }; then printf '@@check FAIL %s %s\\n%s\\n' ${q(c.path)} ${q(cmd.split(' ')[0]!)} "$out"; failed=1; fi`)
  }
  L.push(`if [ $failed -ne 0 ]; then rm -f ${staged.join(' ') || '/dev/null'}; rm -rf ${W}; exit 3; fi`, `mv ${W} "$G/${s.gen}"`, 'echo staged')
  return L.join('\n') + '\n'
}

/**
 * The shell line that performs one service step; reload/restart of a stopped unit starts it
 * (systemctl does both in one call: restart starts a stopped unit, reload-or-restart too).
 */
export function stepLine(step: Pick<ServiceStep, 'command'>): string {
  const [a, b, c] = step.command
  if (a === 'systemctl' && b === 'reload' && c) return `systemctl reload-or-restart ${q(c)}`
  return step.command.map(q).join(' ')
}

export interface SwapSpec {
  gen: number
  confirmTimeoutS: number
  changes: FileChange[]
  steps: ServiceStep[]
  enable: string[]
  start: string[]
  fence?: number
}

/**
 * A conntrackd that just (re)started has an empty external cache: until the peer sends its
 * table again, a failover would miss every flow. `conntrackd -n` asks the peer for it now, as
 * hafw-notify does on a transition to BACKUP (the health gate sends it, rollback.sh too).
 */
export function resyncLine(conf: string): string {
  return `conntrackd -C ${q(conf)} -n`
}

/** Whether these steps (re)start conntrackd. */
export const restartsConntrackd = (steps: Pick<ServiceStep, 'service'>[], start: readonly string[]) => steps.some((st) => st.service === 'conntrackd') || start.includes('conntrackd.service')

/**
 * Services whose (re)start leaves the packet path to the node alone: no ruleset, sysctl,
 * route or unit change comes after them (SERVICE_ORDER runs them last).
 */
const OFF_PATH = new Set(['conntrackd', 'keepalived'])

/**
 * Arm the on-host rollback, then swap and run the services, one round trip. The timer exists
 * before the first rename: whatever happens to this connection from there on, the node rolls
 * itself back unless confirm() disarms it. Prints "@@armed", then "@@step <name> <rc> <ms>",
 * and "@@path" once nothing left to run changes the path a new SSH connection takes (the
 * health gate's reconnect may start then, while conntrackd restarts).
 */
export function swapScript(s: SwapSpec): string {
  const u = timerUnit(s.gen)
  const L: string[] = [...HEAD, ...lockedLines(s.fence)]
  L.push(
    // a unit of that name left by an earlier attempt at this generation is cleared only when
    // systemd-run finds one (an extra systemctl per swap otherwise)
    `arm() { systemd-run --quiet --on-active=${s.confirmTimeoutS} --timer-property=AccuracySec=100ms --unit=${u} --description=${q(`hafw: roll back generation ${s.gen} unless confirmed`)} /bin/sh "$G/${s.gen}/rollback.sh"; }`,
    `arm 2>/dev/null || { systemctl stop ${u}.timer >/dev/null 2>&1; systemctl reset-failed ${u}.timer ${u}.service >/dev/null 2>&1; arm; } || { echo 'cannot arm the rollback timer' >&2; exit 4; }`,
    'echo @@armed',
    // the time in 10 ms ticks from /proc/uptime, without a process (a step's own time is in its log line)
    'tick() { read -r _u _ < /proc/uptime; _t=$(( ${_u%.*} * 100 + 1${_u#*.} - 100 )); }',
    'fail() { echo "@@fail $1" ; exit 5; }',
  )
  for (const c of s.changes) {
    const p = q(c.path)
    if (c.change === 'metadata') {
      const [user, group] = c.owner.split(':')
      L.push(`chmod ${c.mode} ${p} && chown ${q(`${user}:${group ?? user}`)} ${p} || fail ${q(`metadata ${c.path}`)}`)
    } else L.push(`mv -f -- ${q(stagedPath(c.path, s.gen))} ${p} || fail ${q(`rename ${c.path}`)}`)
  }
  if (s.changes.length) L.push(`sync -- ${[...new Set(s.changes.map((c) => q(dirname(c.path))))].join(' ')} 2>/dev/null || sync`)
  const step = (name: string, line: string) =>
    L.push(`tick; t=$_t; out=$( { ${line}; } 2>&1); rc=$?; tick; printf '@@step %s %s %s\\n' ${q(name)} $rc $(( (_t - t) * 10 )); if [ $rc -ne 0 ]; then printf '%s\\n' "$out"; exit 5; fi`)
  // the marker follows the last step on the path (-1: before the first); none when units are
  // enabled or started (hafw-firewall.service loads a ruleset), which comes after every step
  const last = s.enable.length || s.start.length ? null : s.steps.findLastIndex((st) => !OFF_PATH.has(st.service))
  if (last === -1) L.push('echo @@path')
  s.steps.forEach((st, i) => {
    step(`${st.service}/${st.action}`, stepLine(st))
    if (i === last) L.push('echo @@path')
  })
  if (s.enable.length) step('enable', `systemctl enable --quiet ${s.enable.map(q).join(' ')}`)
  if (s.start.length) step('start', `systemctl start ${s.start.map(q).join(' ')}`)
  L.push('echo @@done')
  return L.join('\n') + '\n'
}

/**
 * The rollback script of generation <gen>, stored on the node and run by the timer (or at once
 * by hafw when the health gate fails and the connection still works). Idempotent and locked;
 * does nothing once the generation is confirmed.
 */
export function rollbackScript(s: { gen: number; prev: number | null; backend: Backend; changes: FileChange[]; steps: ServiceStep[]; enable: string[]; start: string[]; saveRuleset: boolean; resync?: string }): string {
  const D = `"$G/${s.gen}"`
  const L: string[] = [
    '#!/bin/sh',
    `# hafw: undo generation ${s.gen} (back to ${s.prev ?? 'the state before hafw'}) unless it was confirmed.`,
    ...HEAD,
    ...lockedLines(undefined),
    // HAFW_FENCE: hafw runs it now (not the timer) for a job holding that token
    'if [ -n "${HAFW_FENCE:-}" ]; then',
    ...fenceLines('$HAFW_FENCE'),
    'fi',
    // HAFW_FORCE=1: undo a confirmed generation (its pair's other node failed afterwards)
    `[ -e ${D}/rolled-back ] && exit 0`,
    `[ -z "\${HAFW_FORCE:-}" ] && [ -e ${D}/confirmed ] && exit 0`,
    `exec >>${D}/rollback.log 2>&1`,
    `echo "$(date -Is) rolling back generation ${s.gen}"`,
    `rm -f ${s.changes.filter((c) => c.change !== 'metadata').map((c) => q(stagedPath(c.path, s.gen))).join(' ') || '/dev/null'}`,
  ]
  // units this generation enabled or started go first, while their unit files still exist
  if (s.start.length) L.push(`systemctl stop ${s.start.map(q).join(' ')} || true`)
  if (s.enable.length) L.push(`systemctl disable --quiet ${s.enable.map(q).join(' ')} || true`)
  for (const c of s.changes) {
    const p = q(c.path)
    L.push(
      `if [ -e ${D}/before${p} ]; then cp -p -- ${D}/before${p} ${q(stagedPath(c.path, s.gen))} && sync -- ${q(stagedPath(c.path, s.gen))}; mv -f -- ${q(stagedPath(c.path, s.gen))} ${p}; else rm -f -- ${p}; fi`,
    )
  }
  const wasStopped = new Set(s.start)
  for (const st of s.steps) {
    // A unit that was not running before this generation is stopped below, not reloaded.
    const unit = st.command[0] === 'systemctl' ? st.command[2] : undefined
    if (unit && wasStopped.has(unit)) continue
    if (st.service === 'firewall') {
      // the loader of the previous generation, or (none before hafw) the saved live ruleset;
      // nothing saved (saveRuleset): the loader existed before, so it is there again
      if (!s.saveRuleset) {
        L.push(`${stepLine(st)} || echo "failed: firewall"`)
        continue
      }
      const restore =
        s.backend === 'iptables'
          ? `{ iptables-restore < ${D}/ruleset.save && { [ ! -s ${D}/ruleset6.save ] || ip6tables-restore < ${D}/ruleset6.save; }; }`
          : `{ echo 'flush ruleset'; cat ${D}/ruleset.save; } | nft -f -`
      L.push(`if [ -x ${q(st.command[0]!)} ]; then ${stepLine(st)}; else ${restore}; fi || echo "failed: firewall"`)
    } else if (st.command[0]?.startsWith('/')) {
      L.push(`[ -x ${q(st.command[0])} ] && ${stepLine(st)} || echo ${q(`skipped or failed: ${st.service}`)}`)
    } else if (st.service === 'sysctl') {
      L.push(`[ -e ${q(st.command[st.command.length - 1]!)} ] && ${stepLine(st)} || true`)
    } else L.push(`${stepLine(st)} || echo ${q(`failed: ${st.service}/${st.action}`)}`)
  }
  if (s.resync && s.steps.some((x) => x.service === 'conntrackd') && !wasStopped.has('conntrackd.service')) L.push(`${resyncLine(s.resync)} || true`)
  if (s.steps.some((x) => x.service === 'systemd') || s.changes.some((c) => c.path.startsWith('/etc/systemd/'))) L.push('systemctl daemon-reload || true')
  L.push(
    s.prev === null ? `rm -f ${NODE_DIR}/current` : `echo ${s.prev} > ${NODE_DIR}/current.tmp && mv -f ${NODE_DIR}/current.tmp ${NODE_DIR}/current`,
    `date -Is > ${D}/rolled-back`,
    'sync',
    `echo "$(date -Is) rolled back to ${s.prev ?? 'the state before hafw'}"`,
  )
  return L.join('\n') + '\n'
}

/**
 * Confirm: disarm the timer, record the live state for drift detection, make <gen> current,
 * keep the last KEEP_GENERATIONS. Exit 9 when the timer already rolled the generation back.
 */
export function confirmScript(gen: number, backend: Backend, fence?: number, at = new Date()): string {
  const D = `"$G/${gen}"`
  return [
    ...HEAD,
    liveFunctions(backend),
    ...lockedLines(fence),
    `if [ -e ${D}/rolled-back ]; then echo rolled-back; exit 9; fi`,
    // hafw's clock, not a `date` process on the node
    `echo ${at.toISOString()} > ${D}/confirmed`,
    `systemctl stop ${timerUnit(gen)}.timer >/dev/null 2>&1 || true`,
    // stage made it (a generation staged by an older hafw did not)
    `[ -d ${D}/live ] || mkdir -p ${D}/live`,
    ...LIVE_KINDS.map((k) => `live_${k} > ${D}/live/${k}`),
    `echo ${gen} > ${NODE_DIR}/current.tmp && mv -f ${NODE_DIR}/current.tmp ${NODE_DIR}/current`,
    // all but the newest KEEP_GENERATIONS, with builtins (a handful of directories)
    `set --; ${forEachGeneration('set -- "$@" "$g"')}`,
    `for g in "$@"; do n=0; for h in "$@"; do [ "$h" -gt "$g" ] && n=$((n + 1)); done; [ $n -lt ${KEEP_GENERATIONS} ] || rm -rf "$G/$g"; done`,
    `sync -- ${NODE_DIR}`,
    'echo confirmed',
  ].join('\n') + '\n'
}

/** Remove what a failed stage left (before anything was swapped). */
export function discardScript(gen: number, changes: FileChange[], fence?: number): string {
  return [...HEAD, ...lockedLines(fence), `rm -f ${changes.map((c) => q(stagedPath(c.path, gen))).join(' ') || '/dev/null'}`, `rm -rf "$G/${gen}" "$G/${gen}.tmp"`].join('\n') + '\n'
}
