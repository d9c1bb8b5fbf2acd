import { describe, expect, it } from 'vitest'
import { readFileSync } from 'node:fs'
import { parseInventory, type Model } from '@hafw/inventory'
import { renderInventory } from '@hafw/render'

/*
 * hafw's output for inventory/reference.yaml against the configurations of seeds 001 and 000
 * (test/golden/seed-*), line by line. Both sides become normalised lines: for brace-structured
 * configs each line carries its block path ("vrrp_instance VI_1 > virtual_ipaddress > ..."), for
 * iptables the table ("nat: -A PREROUTING ..."). Then:
 *   - every seed line, after the listed rewrites, must appear in hafw's output;
 *   - every line of hafw's output must be a (rewritten) seed line or a listed addition.
 * Each rewrite and addition carries the reason for the difference: that list IS the record of
 * every intentional difference from the seeds.
 */

/** replacement null: the seed line is intentionally not rendered */
type Change = [pattern: RegExp, replacement: string | null, reason: string]
type Addition = [pattern: RegExp, reason: string]

const model: Model = (() => {
  const r = parseInventory(readFileSync('inventory/reference.yaml', 'utf8'), 'inventory/reference.yaml')
  if (!r.model) throw new Error(r.issues.map((i) => i.message).join('\n'))
  return r.model
})()
const seed = (p: string) => readFileSync(`test/golden/${p}`, 'utf8')
const rendered = (node: string, path: string, profile?: 'rhel') => {
  const f = renderInventory(model, { node, ...(profile ? { profile } : {}) })[0]!.files.find((x) => x.path === path)
  if (!f) throw new Error(`${node} has no ${path}`)
  return f.content
}

/** Brace-structured config (keepalived, conntrackd) -> "block > block > line". */
function blocks(text: string): string[] {
  const stack: string[] = []
  const out: string[] = []
  for (const raw of text.split('\n')) {
    const l = raw.replace(/#.*$/, '').trim().replace(/\s+/g, ' ')
    if (!l) continue
    if (l.endsWith('{')) stack.push(l.slice(0, -1).trim())
    else if (l === '}') stack.pop()
    else out.push([...stack, l].join(' > '))
  }
  return out
}

/** An iptables-restore file -> "table: -A ..." / "table: :CHAIN POLICY". */
function restoreLines(text: string): string[] {
  let table = ''
  const out: string[] = []
  for (const raw of text.split('\n')) {
    const l = raw.trim()
    if (!l || l.startsWith('#') || l === 'COMMIT') continue
    if (l.startsWith('*')) table = l.slice(1)
    else out.push(`${table}: ${l.replace(/ \[0:0\]$/, '')}`)
  }
  return out
}

/** Seed 001's shell script of iptables commands -> the same form; flushes and echoes are dropped (see below). */
function scriptLines(text: string): string[] {
  const out: string[] = []
  for (const raw of text.split('\n')) {
    const m = /^iptables (?:-t (\w+) )?(.*)$/.exec(raw.trim())
    if (!m) continue
    const table = m[1] ?? 'filter'
    const rest = m[2]!.replace(/'([^']*)'/g, '"$1"')
    if (rest === '-F') continue // iptables-restore replaces each table it lists: the flush is implied
    const policy = /^-P (\w+) (\w+)$/.exec(rest)
    out.push(policy ? `${table}: :${policy[1]} ${policy[2]}` : `${table}: ${rest}`)
  }
  return out
}

function compare(seedLines: string[], ours: string[], changes: Change[], additions: Addition[]) {
  const used = new Set<RegExp>()
  const expected = seedLines.flatMap((l) => {
    let x = l
    for (const [re, to] of changes) {
      if (re.test(x)) {
        used.add(re)
        if (to === null) return []
        x = x.replace(re, to)
      }
    }
    return [x]
  })
  const missing = expected.filter((l) => !ours.includes(l))
  const extra = ours.filter((l) => !expected.includes(l) && !additions.some(([re]) => re.test(l)))
  expect(missing, 'seed lines hafw does not render').toEqual([])
  expect(extra, 'lines hafw renders that are neither in the seed nor listed as additions').toEqual([])
  // every listed change and addition is still needed: the list stays an exact record
  expect(changes.filter(([re]) => !used.has(re)).map(([re]) => String(re)), 'unused changes').toEqual([])
  expect(additions.filter(([re]) => !ours.some((l) => re.test(l))).map(([re]) => String(re)), 'unused additions').toEqual([])
}

describe('seed 001, firewall pair cent7i/cent7j', () => {
  it('keepalived.conf of cent7i means what the seed means', () => {
    const changes: Change[] = [
      [/^(vrrp_instance VI_\d) > state SLAVE$/, '$1 > state BACKUP', 'keepalived knows MASTER and BACKUP; SLAVE was read as BACKUP. Both nodes start BACKUP and priority elects'],
      [/^(vrrp_instance VI_\d) > priority 80$/, '$1 > priority 100', 'reference.yaml gives the pair distinct priorities (cent7i 100, cent7j 90): a deterministic master without nopreempt'],
      [/^(vrrp_instance VI_\d) > advert_int 3$/, '$1 > advert_int 1', 'reference.yaml uses the inventory default advert_int 1 (faster failover: 3 x 1 s + skew)'],
      [/"\/etc\/conntrackd\/primary-backup.sh (\w+)"$/, '"/usr/local/sbin/hafw-notify $1"', "hafw's state script (commit timing in state.json, logging, lock), root-owned for enable_script_security"],
      [/^(vrrp_instance VI_\d > virtual_ipaddress > [\d./]+ brd [\d.]+)$/, '$1 dev DEV', 'the device is spelt out (placeholder DEV, checked below)'],
    ]
    const additions: Addition[] = [
      [/^global_defs > router_id cent7i$/, 'router_id names the node in logs and SNMP'],
      [/^global_defs > (enable_script_security|script_user root)$/, 'keepalived 2.x refuses to run notify scripts as root without script security'],
      [/^vrrp_instance VI_\d > version 2$/, 'the inventory chooses the VRRP version explicitly'],
      [/^vrrp_instance VI_\d > garp_master_delay 1$/, 'gratuitous ARPs repeated 1 s after becoming master (inventory default)'],
      [/^vrrp_instance VI_1 > track_interface > enp0s8$|^vrrp_instance VI_2 > track_interface > enp0s3$/, 'one dead VRRP link fails the group instead of leaving a half master (the own interface is tracked implicitly)'],
    ]
    const ours = blocks(rendered('cent7i', '/etc/keepalived/keepalived.conf')).map((l) => l.replace(/ dev enp0s[38]$/, ' dev DEV'))
    compare(blocks(seed('seed-001/cent7i/keepalived.conf')), ours, changes, additions)
    // the device each VIP is put on is its instance's interface
    expect(rendered('cent7i', '/etc/keepalived/keepalived.conf')).toContain('192.168.0.40/24 brd 192.168.0.255 dev enp0s3')
    expect(rendered('cent7i', '/etc/keepalived/keepalived.conf')).toContain('192.168.1.40/24 brd 192.168.1.255 dev enp0s8')
  })

  for (const node of ['cent7i', 'cent7j']) {
    it(`conntrackd.conf of ${node} means what the seed means`, () => {
      const changes: Change[] = [
        [/^General > Nice -20$/, 'SYSTEMD Nice=-20', 'conntrackd 1.4.7 ignores "Nice" ("deprecated nice configuration"); the conntrackd.service drop-in sets Nice=-20'],
        [/^General > UNIX > Backlog 20$/, null, 'conntrackd 1.4.7 ignores "Backlog" ("deprecated unix backlog configuration")'],
      ]
      const additions: Addition[] = [
        [/^General > Systemd on$/, "Debian's and RHEL's conntrackd.service are Type=notify"],
        [/^SYSTEMD Nice=-20$/, 'from the drop-in, see above'],
      ]
      const dropin = rendered(node, '/etc/systemd/system/conntrackd.service.d/hafw.conf')
      const ours = [...blocks(rendered(node, '/etc/conntrackd/conntrackd.conf')), ...(/^Nice=-20$/m.test(dropin) ? ['SYSTEMD Nice=-20'] : [])]
      const seedLines = blocks(seed(`seed-001/${node}/conntrackd.conf`))
      compare(seedLines, ours, changes, additions)
    })
  }

  for (const node of ['cent7i', 'cent7j']) {
    it(`the ruleset of ${node} (iptables-restore) holds every rule of iptables-cent7i-cent7j.sh`, () => {
      const peer = node === 'cent7i' ? '192.168.3.42' : '192.168.3.41'
      const changes: Change[] = [
        [/^filter: -A FORWARD -m state --state ESTABLISHED -j ACCEPT$/, 'filter: -A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT', 'conntrack match (state is its legacy alias); RELATED admits ICMP errors of allowed flows'],
      ]
      const vips = ['192.168.0.40', '192.168.0.60', '192.168.0.88', '192.168.1.40']
      const additions: Addition[] = [
        [/^(raw|mangle|nat|filter): :(PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) ACCEPT$/, 'ownership: full declares every built-in chain of the tables it replaces'],
        [/^filter: :INPUT DROP$/, 'the seed left INPUT open; hafw admits only what the pair needs'],
        [/^raw: -A (PREROUTING -i|OUTPUT -o) enp0s[38] -p 112 -j CT --notrack$/, 'VRRP adverts are not connections: NOTRACK'],
        [/^raw: -A (PREROUTING -i|OUTPUT -o) enp0s9 -p udp --dport 3780 -j CT --notrack$/, "conntrackd's own sync traffic is not tracked (nor replicated)"],
        [new RegExp(`^filter: -A INPUT -d (${vips.join('|').replace(/\./g, '\\.')}) (-m conntrack --ctstate INVALID|-p tcp ! --syn -m conntrack --ctstate NEW) -j DROP$`), 'the failover race: drop, never RST, packets of flows not yet committed (see hafw-notify)'],
        [/^filter: -A INPUT -i lo -j ACCEPT$/, 'INPUT: loopback'],
        [/^filter: -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT$/, 'INPUT: answers to the node itself'],
        [/^filter: -A INPUT -i enp0s[38] -p 112 -j ACCEPT$/, 'INPUT: VRRP on the VRRP interfaces'],
        [new RegExp(`^filter: -A INPUT -i enp0s9 -s ${peer.replace(/\./g, '\\.')} -p udp --dport 3780 -j ACCEPT$`), "INPUT: the peer's conntrackd on the sync link"],
        [/^filter: -A INPUT -p tcp --dport 22 -j ACCEPT$/, 'INPUT: management SSH (from anywhere: reference.yaml sets no ssh_from)'],
        [/^filter: -A INPUT -p icmp --icmp-type echo-request -j ACCEPT$/, 'INPUT: ping'],
        [/^filter: -A FORWARD -m conntrack --ctstate INVALID -j DROP$/, 'FORWARD: packets of flows not (yet) tracked are dropped, never forwarded un-NATed'],
      ]
      compare(scriptLines(seed('seed-001/iptables-cent7i-cent7j.sh')), restoreLines(rendered(node, '/etc/iptables/rules.v4')), changes, additions)
    })
  }
})

describe('seed 001, load-balancer pair cent7g/cent7h', () => {
  it('keepalived.conf of cent7g means what the seed means', () => {
    const changes: Change[] = [
      [/^vrrp_instance instance52 > lvs_sync_daemon_interface enp0s8$/, 'global_defs > lvs_sync_daemon enp0s8 instance52', 'keepalived 2.x syntax: lvs_sync_daemon <iface> <instance> in global_defs'],
      [/^(vrrp_instance instance5\d > virtual_ipaddress > [\d./]+ brd [\d.]+)$/, '$1 dev DEV', 'the device is spelt out (placeholder DEV, checked below)'],
    ]
    const additions: Addition[] = [
      [/^global_defs > router_id cent7g$/, 'router_id names the node'],
      [/^global_defs > (enable_script_security|script_user root)$/, 'script security for the state script'],
      [/^vrrp_sync_group group500 > notify_(master|backup|fault) "\/usr\/local\/sbin\/hafw-notify (primary|backup|fault)"$/, 'the state script records the role for drills on every pair (no conntrackd steps on an LVS pair)'],
      [/^vrrp_instance instance5\d > version 2$/, 'explicit VRRP version'],
      [/^vrrp_instance instance5\d > garp_master_delay 1$/, 'gratuitous ARP repeat (inventory default)'],
      [/^vrrp_instance instance51 > track_interface > enp0s8$|^vrrp_instance instance52 > track_interface > enp0s3$/, 'one dead link fails the group'],
    ]
    const ours = blocks(rendered('cent7g', '/etc/keepalived/keepalived.conf')).map((l) => l.replace(/ dev enp0s[38]$/, ' dev DEV'))
    compare(blocks(seed('seed-001/cent7g/keepalived.conf')), ours, changes, additions)
    expect(rendered('cent7g', '/etc/keepalived/keepalived.conf')).toContain('192.168.2.50/24 brd 192.168.2.255 dev enp0s8')
  })
})

describe('seed 000, policy routing host app1 (profile rhel, as in the seed)', () => {
  const changes: Change[] = [
    [/\beth1$/, 'ops', 'the seed named the routing table after the interface; reference.yaml names it "ops" (table_name)'],
    [/^(\d+)\teth1$/, '$1\tops', 'same table, named "ops"'],
    [/<GW1>/, '10.1.0.1', "the seed's placeholder; reference.yaml gives the gateway"],
  ]
  const plain = (t: string) => t.split('\n').filter((l) => l.trim() && !/^# (routing tables|policy rules|routes via)/.test(l))

  it('rt_tables, rule-eth1 and route-eth1', () => {
    compare(plain(seed('seed-000/rt_tables')), plain(rendered('app1', '/etc/iproute2/rt_tables', 'rhel')), [changes[1]!], [[/^#$/, 'a separator before hafw\'s entries']])
    compare(plain(seed('seed-000/rule-eth1')), plain(rendered('app1', '/etc/sysconfig/network-scripts/rule-eth1', 'rhel')), [changes[0]!], [])
    compare(plain(seed('seed-000/route-eth1')), plain(rendered('app1', '/etc/sysconfig/network-scripts/route-eth1', 'rhel')), [changes[0]!, changes[2]!], [])
  })

  it('the mangle rules (CONNMARK set on NEW from eth1, restored on replies in PREROUTING and OUTPUT)', () => {
    // Path: the seed wrote /etc/sysconfig/iptables.save; iptables.service loads /etc/sysconfig/iptables.
    const additions: Addition[] = [[/^mangle: :(PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) ACCEPT$/, 'hafw owns the mangle table (ownership: full) and declares its chains']]
    compare(restoreLines(seed('seed-000/iptables.save')), restoreLines(rendered('app1', '/etc/sysconfig/iptables', 'rhel')), [], additions)
  })

  it('debian gets the same rules, a drop-in rt_tables entry and a unit instead of network-scripts', () => {
    const files = renderInventory(model, { node: 'app1' })[0]!.files
    expect(files.find((f) => f.path === '/etc/iproute2/rt_tables.d/hafw.conf')!.content).toMatch(/^100\tops$/m)
    expect(restoreLines(files.find((f) => f.path === '/etc/iptables/rules.v4')!.content)).toEqual(restoreLines(rendered('app1', '/etc/sysconfig/iptables', 'rhel')))
    const routing = files.find((f) => f.path === '/usr/local/sbin/hafw-routing')!.content
    expect(routing).toContain('step ip route replace default via 10.1.0.1 dev eth1 table 100')
    expect(routing).toContain('ip rule add fwmark 0x1 table 100')
    expect(files.find((f) => f.path === '/etc/systemd/system/hafw-routing.service')!.content).toContain('ExecStart=/usr/local/sbin/hafw-routing')
    expect(files.some((f) => f.path.includes('network-scripts'))).toBe(false)
  })
})
