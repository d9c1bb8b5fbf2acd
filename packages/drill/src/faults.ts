import type { NodeModel, PairModel } from '@hafw/inventory'
import { RUNTIME } from '@hafw/render/layout'
import { shellQuote as q } from '@hafw/transport'
import type { DrillMode } from './types.js'

/*
 * What each mode breaks on the active node, and how it is put right: shell scripts run over the
 * node's SSH session. Every restore step is idempotent, so the same script serves the normal
 * restore, the restore after an error or abort, and the on-host timer armed before the fault
 * (it restores the node by itself if hafw loses the node or dies mid-drill).
 *
 *   graceful   systemctl stop keepalived (it sends priority-0 adverts: the peer takes over after its skew time)
 *   crash      kill -9 keepalived and conntrackd, every pair link down (the SSH link stays up)
 *   link       one watched link down (keepalived's track_interface puts the group in FAULT)
 *   partition  drop VRRP (IP protocol 112; IPv6 too on a pair with IPv6 instances) in and out on one segment: the nodes stop hearing each other there
 *
 * `settle` is the part of the restore that leaves the peer as master and the pair able to
 * sync again (crash: links up, conntrackd running and resynced), so convergence after the
 * failover can be verified; `clear` is the rest (keepalived back, the link up, the rules gone),
 * which lets a preempting node take its VIPs back: with --failback that is the failback.
 */

export interface FaultPlan {
  mode: DrillMode
  node: string
  /** devices the fault acts on */
  devices: string[]
  /** what the trigger did, for the timeline */
  what: string
  inject: string
  settle: string | null
  clear: string
  /** notes on how the fault was chosen */
  notes: string[]
}

const PATH = 'PATH=/usr/sbin:/usr/bin:/sbin:/bin'
/** The node's clock at the trigger, printed for the timeline. */
const STAMP = `printf '@@t %s\\n' "$(date +%s%3N)"`

/**
 * A keepalived unit whose processes were SIGKILLed can stay "deactivating" until its stop
 * timeout when systemd misses the cgroup's empty notification (cgroup v1 in a container);
 * a daemon-reload makes systemd look again. Harmless elsewhere.
 */
const UNSTICK = `[ "$(systemctl is-active keepalived.service)" = deactivating ] && systemctl daemon-reload`

function conntrackdUp(conf: string): string {
  const lock = RUNTIME.conntrackdLock
  // After kill -9 conntrackd leaves its lock file, and every restart fails on it ("lockfile
  // exists") until systemd gives up (hafw's drop-in now removes it; older nodes lack that):
  // remove it only when no conntrackd runs. Then ask the peer for a full resync, as
  // hafw-notify's backup transition would.
  return [
    `if ! conntrackd -C ${q(conf)} -s >/dev/null 2>&1; then`,
    `  if ! pgrep -x conntrackd >/dev/null && [ -e ${q(lock)} ]; then rm -f ${q(lock)}; echo '@@note removed the stale conntrackd lock file ${lock} (left by kill -9; conntrackd.service could not restart by itself)'; fi`,
    '  systemctl reset-failed conntrackd.service 2>/dev/null',
    '  systemctl restart conntrackd.service || echo "@@error conntrackd.service did not start"',
    `  i=0; while [ $i -lt 50 ] && ! conntrackd -C ${q(conf)} -s >/dev/null 2>&1; do sleep 0.1; i=$((i+1)); done`,
    'fi',
    // Also when conntrackd.service restarted it by itself (its drop-in removes a stale lock):
    // that happened while the links were down, so its external cache is empty either way.
    `conntrackd -C ${q(conf)} -n >/dev/null 2>&1 || true`,
  ].join('\n')
}

const linksUp = (devs: string[]) => devs.map((d) => `ip link set dev ${q(d)} up`).join('\n')
const linksDown = (devs: string[]) => devs.map((d) => `ip link set dev ${q(d)} down`).join('\n')

/** Whether the pair runs IPv6 VRRP instances (native IPv6 VRRPv3: next header 112 to ff02::12). */
const hasV6 = (pair: PairModel) => pair.vrrp.instances.some((i) => i.family === 6)

function vrrpRules(pair: PairModel, dev: string, add: boolean): string {
  if (pair.firewall.backend === 'nftables') {
    // a table of its own: hafw's ruleset (flush ruleset or table inet hafw) is left alone; an
    // inet table's `meta l4proto 112` is VRRP of both families
    const d = JSON.stringify(dev)
    return add
      ? `nft -f - <<'EOF'\ntable inet hafw_drill {\n  chain in { type filter hook input priority -300; iifname ${d} meta l4proto 112 drop; }\n  chain out { type filter hook output priority -300; oifname ${d} meta l4proto 112 drop; }\n}\nEOF`
      : 'nft delete table inet hafw_drill 2>/dev/null || true'
  }
  const rules = [`INPUT -i ${q(dev)} -p 112 -j DROP`, `OUTPUT -o ${q(dev)} -p 112 -j DROP`]
  const tools = hasV6(pair) ? ['iptables', 'ip6tables'] : ['iptables']
  return tools
    .flatMap((t) =>
      add
        ? rules.map((r) => `${t} -w -I ${r.replace(/^(\S+)/, '$1 1')}`)
        : rules.map((r) => `while ${t} -w -C ${r} 2>/dev/null; do ${t} -w -D ${r}; done`),
    )
    .join('\n')
}

/** The device of a logical interface (or a device name) on the node. */
export function deviceOf(node: NodeModel, name: string): string | undefined {
  return node.interfaces[name]?.device ?? Object.values(node.interfaces).find((i) => i.device === name)?.device
}

/**
 * The fault for a mode. `sshDevice` is the device the node's SSH session arrives on: crash and
 * link never take it down (hafw must reach the node to restore it).
 */
export function planFault(pair: PairModel, mode: DrillMode, node: NodeModel, conntrackdConf: string | null, opts: { link?: string; sshDevice?: string | null } = {}): FaultPlan {
  const notes: string[] = []
  const vrrpDevs = [...new Set(pair.vrrp.instances.map((i) => deviceOf(node, i.interface)).filter((d): d is string => !!d))]
  const watched = [...new Set(pair.vrrp.instances.flatMap((i) => i.track_interfaces).map((l) => deviceOf(node, l)).filter((d): d is string => !!d))]
  const pick = (candidates: string[], what: string): string => {
    if (opts.link) {
      const d = deviceOf(node, opts.link)
      if (!d) throw new Error(`pair ${pair.name}: ${node.name} has no interface "${opts.link}" (interfaces: ${Object.values(node.interfaces).map((i) => `${i.name}=${i.device}`).join(', ')})`)
      if (d === opts.sshDevice) throw new Error(`${node.name}: ${d} carries hafw's SSH session to the node; the drill would lose the node. Pick another --link`)
      return d
    }
    const d = candidates.find((x) => x !== opts.sshDevice)
    if (!d) throw new Error(`${node.name}: no ${what} that does not carry hafw's SSH session (${opts.sshDevice})`)
    return d
  }
  const ct = conntrackdConf
  switch (mode) {
    case 'graceful':
      return { mode, node: node.name, devices: [], what: 'systemctl stop keepalived', inject: [PATH, STAMP, 'systemctl stop keepalived.service'].join('\n'), settle: null, clear: [PATH, UNSTICK, 'systemctl start keepalived.service'].join('\n'), notes }
    case 'crash': {
      const all = Object.values(node.interfaces).map((i) => i.device)
      const devs = all.filter((d) => d !== opts.sshDevice)
      if (devs.length < all.length) notes.push(`crash: ${opts.sshDevice} of ${node.name} stays up: hafw reaches the node through it`)
      // Stopped first, then killed: keepalived's parent respawns a dead VRRP child, and a child
      // gets SIGTERM when its parent dies (PDEATHSIG) and would say goodbye (priority 0), which is
      // a graceful stop, not a crash. Stopped processes handle nothing until SIGKILL ends them.
      // The SIGKILL comes from systemd for the whole cgroup at once: killed one by one (pkill),
      // systemd sees the main process die first and sends the rest SIGTERM and SIGCONT, and a
      // VRRP child woken that way says goodbye before its SIGKILL arrives (seen in the lab under
      // load: a 612 ms "crash" failover, the skew time of a graceful one).
      const procs = ['keepalived', ...(ct ? ['conntrackd'] : [])]
      const units = procs.map((p) => `${p}.service`).join(' ')
      const kill = [...procs.map((p) => `pkill -STOP -x ${p}`), `systemctl kill --signal=SIGKILL ${units} || { ${procs.map((p) => `pkill -KILL -x ${p}`).join('; ')}; }`].join('; ')
      // A crashed host comes back without the VIPs keepalived held (kill -9 leaves them on the
      // interfaces): remove them before the links come up, or the pair has two masters.
      const vips = pair.vrrp.instances.flatMap((i) => i.vips.map((v) => `ip addr del ${q(v.cidr)} dev ${q(deviceOf(node, i.interface) ?? i.interface)} 2>/dev/null`))
      const settle = [PATH, ...vips, linksUp(devs), ...(ct ? [conntrackdUp(ct)] : [])].join('\n')
      return {
        mode,
        node: node.name,
        devices: devs,
        what: `kill -9 keepalived${ct ? ' and conntrackd' : ''}; links ${devs.join(', ')} down`,
        inject: [PATH, STAMP, `${kill}; ${linksDown(devs).replace(/\n/g, '; ')}`].join('\n'),
        settle,
        clear: [settle, UNSTICK, 'systemctl start keepalived.service'].join('\n'),
        notes,
      }
    }
    case 'link': {
      const d = pick(watched, 'watched link')
      return { mode, node: node.name, devices: [d], what: `link ${d} down`, inject: [PATH, STAMP, linksDown([d])].join('\n'), settle: null, clear: [PATH, linksUp([d])].join('\n'), notes }
    }
    case 'partition': {
      const d = pick(vrrpDevs, 'VRRP segment')
      return {
        mode,
        node: node.name,
        devices: [d],
        what: `drop VRRP (IP protocol 112${hasV6(pair) ? ', IPv4 and IPv6' : ''}) in and out on ${d}`,
        inject: [PATH, STAMP, vrrpRules(pair, d, true)].join('\n'),
        settle: null,
        clear: [PATH, vrrpRules(pair, d, false)].join('\n'),
        notes,
      }
    }
  }
}

/**
 * The on-host safety net: a transient systemd timer that runs the restore by itself after
 * `seconds`. The script goes to a file first: systemd-run takes one command line.
 */
export function armScript(unit: string, seconds: number, clear: string, what: string): string {
  const file = `${RUNTIME.runDir}/${unit}.sh`
  return [
    PATH,
    `mkdir -p ${q(RUNTIME.runDir)}`,
    `cat > ${q(file)} <<'HAFW_RESTORE_EOF'`,
    clear,
    'HAFW_RESTORE_EOF',
    `systemd-run --quiet --unit=${q(unit)} --description=${q(`hafw drill: restore ${what}`)} --on-active=${Math.ceil(seconds)}s --timer-property=AccuracySec=1s /bin/sh ${q(file)}`,
  ].join('\n')
}

export function disarmScript(unit: string): string {
  return `${PATH}\nsystemctl stop ${q(`${unit}.timer`)} 2>/dev/null; systemctl reset-failed ${q(`${unit}.timer`)} ${q(`${unit}.service`)} 2>/dev/null; rm -f ${q(`${RUNTIME.runDir}/${unit}.sh`)}; true`
}

/** The device the SSH session arrives on ($SSH_CONNECTION's server address, either family: ip and sshd both print inet_ntop's text). */
export const SSH_DEVICE_SCRIPT = `${PATH}\nset -- $SSH_CONNECTION; [ -n "\${3:-}" ] && ip -o addr show | awk -v a="$3" '{ split($4, p, "/"); if (p[1] == a) { print $2; exit } }'`
