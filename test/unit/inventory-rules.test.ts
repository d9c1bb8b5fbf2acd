import { describe, expect, it } from 'vitest'
import { readFileSync } from 'node:fs'
import { parseDocument } from 'yaml'
import { parseInventory } from '@hafw/inventory'

/*
 * The valid side of every rule: the minimal variant of a good base that sits on the edge of a
 * rule (the largest port, equal priorities with nopreempt, a /31 link, ...) must pass. The bad
 * side lives in the corpus (inventory-corpus.test.ts).
 */

const base = (name: string) => readFileSync(`test/fixtures/inventory/good/${name}.yaml`, 'utf8')
type Edit = [path: (string | number)[], value: unknown]

/** The base with values set (or deleted, value undefined) through the YAML document model. */
function variant(name: string, ...edits: Edit[]): string {
  const doc = parseDocument(base(name))
  for (const [path, value] of edits) {
    if (value === undefined) doc.deleteIn(path)
    else doc.setIn(path, doc.createNode(value))
  }
  return String(doc)
}

function issuesOf(text: string) {
  return parseInventory(text, 'variant.yaml').issues.map((i) => `${i.line}:${i.column} ${i.path}: ${i.message}`)
}

const P = ['pairs', 0]
const N0 = [...P, 'nodes', 0]
const N1 = [...P, 'nodes', 1]
const H = ['hosts', 0]

describe('good bases', () => {
  it.each(['firewall', 'loadbalancer', 'host', 'full', 'dualstack'])('%s.yaml is valid and builds a model', (name) => {
    const r = parseInventory(base(name), `${name}.yaml`)
    expect(r.issues).toEqual([])
    expect(r.model).not.toBeNull()
  })

  it.each(['inventory/lab.yaml', 'inventory/reference.yaml'])('%s is valid', (f) => {
    expect(issuesOf(readFileSync(f, 'utf8'))).toEqual([])
  })
})

describe('rules: the valid edge of each passes', () => {
  const cases: [string, string, Edit[]][] = [
    // pairs, names, priorities
    ['equal priorities with nopreempt', 'firewall', [[[...N1, 'priority'], 150], [[...P, 'vrrp', 'nopreempt'], true]]],
    ['priorities 1 and 254', 'firewall', [[[...N0, 'priority'], 254], [[...N1, 'priority'], 1]]],
    ['names of 32 characters with "_" and "-"', 'firewall', [[[...N0, 'name'], 'a'.repeat(30) + '_-'], [[...P, 'vrrp', 'sync_group'], 'Grp_1-x']]],
    // VRIDs
    ['VRIDs 1 and 255', 'firewall', [[[...P, 'vrrp', 'instances', 0, 'vrid'], 1], [[...P, 'vrrp', 'instances', 1, 'vrid'], 255]]],
    ['one VRID on two segments of a pair', 'firewall', [[[...P, 'vrrp', 'instances', 1, 'vrid'], 61]]],
    ['one VRID in two pairs on different subnets', 'full', [[['pairs', 1, 'vrrp', 'instances', 1, 'vrid'], 61]]],
    // devices
    ['device names of 15 characters, with ".", "-" and "_"', 'firewall', [[[...N0, 'interfaces', 'outside'], 'enp0s31f6.1000a'], [[...N0, 'interfaces', 'inside'], 'br-lan'], [[...N0, 'interfaces', 'sync'], 'veth_sync']]],
    // addresses
    ['a /31 sync link (no network or broadcast address)', 'firewall', [[[...N0, 'addresses', 'sync'], '192.168.13.0/31'], [[...N1, 'addresses', 'sync'], '192.168.13.1/31']]],
    ['a /32 VIP inside the interface subnet', 'firewall', [[[...P, 'vrrp', 'instances', 1, 'vips'], ['192.168.11.10/32']]]],
    ['a host reached by name', 'host', [[[...H, 'address'], 'app1.example.com']]],
    ['a route through a named interface', 'firewall', [[[...P, 'routes', 0, 'interface'], 'inside']]],
    ['ssh_from subnets and addresses', 'firewall', [[['defaults', 'firewall', 'ssh_from'], ['10.0.0.0/8', '198.18.0.1', '0.0.0.0/0']]]],
    // ports and protocols
    ['ports 1 and 65535 with tcp and udp', 'firewall', [[[...P, 'nat', 'dnat', 0, 'dport'], 1], [[...P, 'nat', 'dnat', 0, 'to_port'], 65535], [[...P, 'filter', 'allow', 0, 'proto'], 'udp'], [[...P, 'filter', 'allow', 0, 'sport'], 65535]]],
    ['icmp without ports', 'firewall', [[[...P, 'filter', 'allow', 1, 'proto'], 'icmp']]],
    // enumerations: the other member of each
    ['kind loadbalancer, lb_kind DR, lb_algo sh', 'loadbalancer', [[[...P, 'virtual_servers', 0, 'lb_kind'], 'DR'], [[...P, 'virtual_servers', 0, 'lb_algo'], 'sh']]],
    ['lb_kind TUN, protocol udp, check tcp', 'loadbalancer', [[[...P, 'virtual_servers', 0, 'lb_kind'], 'TUN'], [[...P, 'virtual_servers', 0, 'protocol'], 'udp'], [[...P, 'virtual_servers', 0, 'real_servers', 0, 'check', 'type'], 'tcp']]],
    ['backend nftables, ownership chains, profile rhel', 'firewall', [[['defaults', 'firewall'], { backend: 'nftables', ownership: 'chains' }], [['defaults', 'profile'], 'rhel']]],
    ['sync mode alarm, forward_policy accept, no log', 'firewall', [[['defaults', 'conntrack_sync', 'mode'], 'alarm'], [[...P, 'filter', 'forward_policy'], 'accept'], [[...P, 'filter', 'log_dropped'], false]]],
    ['sync mode notrack, VRRP version 3', 'firewall', [[['defaults', 'conntrack_sync', 'mode'], 'notrack'], [['defaults', 'vrrp', 'version'], 3]]],
    ['VRRP version 2 with AH auth', 'firewall', [[['defaults', 'vrrp', 'version'], 2], [['defaults', 'vrrp', 'auth'], { type: 'AH', password: 'x' }]]],
    // safe strings at their limits
    ['a log prefix of 29 allowed characters', 'firewall', [[[...P, 'filter', 'log_dropped'], 'FW:drop in=outside x.y_z-123 ']]],
    ['a password of 8 characters', 'loadbalancer', [[[...P, 'vrrp', 'auth', 'password'], 'Ab3_.-9z']]],
    ['an http path with a query', 'loadbalancer', [[[...P, 'virtual_servers', 1, 'real_servers', 0, 'check', 'url', 'path'], '/health?full=1&x=%20']]],
    ['a misc check with plain arguments', 'loadbalancer', [[[...P, 'virtual_servers', 0, 'real_servers', 1, 'check', 'misc_path'], '/usr/lib/check_smtp -H 192.168.12.62 -p 25 --timeout=3']]],
    ['sysctls with plain values', 'host', [[[...H, 'sysctls'], { 'net.ipv4.ip_forward': 1, 'net.ipv4.conf.all.rp_filter': '2' }]]],
    // policy routing
    ['fwmark as a number and as a hex string, tables 1 and 252', 'host', [[[...H, 'pbr', 0, 'fwmark'], 16], [[...H, 'pbr', 1, 'fwmark'], '0xff'], [[...H, 'pbr', 0, 'table'], 1], [[...H, 'pbr', 1, 'table'], 252]]],
    // load balancer
    ['a real server in two virtual servers on different ports', 'loadbalancer', []],
    ['weight 0 (drain) and persistence', 'loadbalancer', [[[...P, 'virtual_servers', 0, 'real_servers', 0, 'weight'], 0], [[...P, 'virtual_servers', 0, 'persistence_timeout'], 300]]],
    // optional sections may be left out
    ['a firewall pair without NAT, filter, routes, sync or drill', 'firewall', [[[...P, 'nat'], undefined], [[...P, 'filter'], undefined], [[...P, 'routes'], undefined], [[...P, 'conntrack_sync'], undefined], [[...P, 'drill'], undefined]]],
  ]
  it.each(cases)('%s', (_, name, edits) => {
    expect(issuesOf(variant(name, ...edits))).toEqual([])
  })
})

describe('rules: the invalid side, built from the same bases', () => {
  // The corpus holds the full list; these pin rules whose trigger is a combination of fields.
  it('equal priorities fail without nopreempt and pass with it', () => {
    const eq: Edit = [[...N1, 'priority'], 150]
    expect(issuesOf(variant('firewall', eq))).toEqual([expect.stringContaining('pairs[0].nodes[1].priority: both nodes have priority 150')])
    expect(issuesOf(variant('firewall', eq, [[...P, 'vrrp', 'nopreempt'], true]))).toEqual([])
  })

  it('a VRID is unique per segment: the same VRID on two pairs fails only on a shared subnet', () => {
    // lb1's front is 192.168.11.0/24, the firewall's inside segment (VRID 62)
    expect(issuesOf(variant('full', [['pairs', 1, 'vrrp', 'instances', 0, 'vrid'], 62]))).toEqual([expect.stringContaining('VRID 62 is already used on segment 192.168.11.0/24')])
    // lb1's back is 192.168.12.0/24, where nothing else runs VRRP
    expect(issuesOf(variant('full', [['pairs', 1, 'vrrp', 'instances', 1, 'vrid'], 62]))).toEqual([])
  })

  it('a /31 link is fine, a /30 network address is not', () => {
    expect(issuesOf(variant('firewall', [[...N0, 'addresses', 'sync'], '192.168.13.0/30'], [[...N1, 'addresses', 'sync'], '192.168.13.1/30']))).toEqual([
      expect.stringContaining('192.168.13.0/30 is the network address of its subnet'),
    ])
  })

  it('ports need tcp or udp: every port field is checked', () => {
    const r = issuesOf(variant('firewall', [[...P, 'filter', 'allow', 1], { in: 'inside', src: '192.168.11.0/24', sport: 1024, dport: 53 }]))
    expect(r).toEqual([expect.stringContaining('allow[1].sport: sport needs proto: tcp or udp, found no proto'), expect.stringContaining('allow[1].dport: dport needs proto: tcp or udp, found no proto')])
  })
})

describe('all problems at once', () => {
  it('reports independent problems across defaults, pairs and hosts, sorted by line and column', () => {
    const text = variant(
      'full',
      [['defaults', 'firewall', 'backend'], 'pf'], // schema error in defaults
      [[...N0, 'interfaces', 'inside'], 'eth0;reboot'], // schema error in pair 0
      [['pairs', 1, 'nodes', 1, 'priority'], 100], // fine: lb1 has nopreempt
      [['pairs', 1, 'vrrp', 'instances', 0, 'vrid'], 62], // cross-pair rule
      [['hosts', 0, 'pbr', 1, 'table'], 100], // host rule
      [['hosts', 0, 'name'], 'fw1b'], // global name rule: pair 0 has a schema error, its names still count
    )
    const issues = parseInventory(text, 'multi.yaml').issues
    expect(issues.map((i) => i.path)).toEqual([
      'defaults.firewall.backend',
      'pairs[0].nodes[0].interfaces.inside',
      'pairs[1].vrrp.instances[0].vrid',
      'hosts[0].name',
      'hosts[0].pbr[1].table',
    ])
    const positions = issues.map((i) => i.line * 1000 + i.column)
    expect(positions).toEqual([...positions].sort((a, b) => a - b))
  })

  it('a duplicate key does not hide the other problems', () => {
    const text = base('host').replace('    profile: debian\n', '    profile: debian\n    profile: rhel\n').replace('table: 101', 'table: 999')
    const issues = parseInventory(text, 'dup.yaml').issues
    expect(issues.map((i) => `${i.line} ${i.path}: ${i.message}`)).toEqual([
      expect.stringMatching(/^8 : YAML: duplicate key "profile" \(first defined on line 7\)$/),
      expect.stringMatching(/^15 hosts\[0\]\.pbr\[1\]\.table: expected a routing table id 1\.\.252, found 999$/),
    ])
  })

  it('a YAML syntax error stops at the first one (the rest are its echoes)', () => {
    const issues = parseInventory('version: 1\nsite: [lab\npairs: {\n', 'syntax.yaml').issues
    expect(issues).toHaveLength(1)
    expect(issues[0]!.message).toMatch(/^YAML: /)
  })

  it('refuses an alias bomb instead of expanding it', () => {
    const bomb = ['version: 1', 'site: lab', 'a: &a [x, x, x, x, x, x, x, x, x, x]', ...'bcdefghij'.split('').map((c, k) => `${c}: &${c} [${Array(10).fill(`*${'abcdefghij'[k]}`).join(', ')}]`)].join('\n')
    const t0 = Date.now()
    const issues = parseInventory(bomb, 'bomb.yaml').issues
    expect(Date.now() - t0).toBeLessThan(2000)
    expect(issues).toEqual([expect.objectContaining({ line: 1, column: 1, message: 'YAML: Excessive alias count indicates a resource exhaustion attack' })])
  })
})

describe('IPv6 and safe strings', () => {
  it("dualstack.yaml is valid; the model keeps each interface's two families apart, IPv6 canonical", () => {
    const r = parseInventory(base('dualstack'), 'dualstack.yaml')
    expect(r.issues).toEqual([])
    const p = r.model!.pairs[0]!
    expect(p.nodes[0].interfaces.outside!.address!.cidr).toBe('192.168.10.11/24')
    expect(p.nodes[0].interfaces.outside!.address6).toMatchObject({ family: 6, ip: 'fd00:10::11', prefix: 64, network: 'fd00:10::' })
    expect(p.vrrp.instances.map((i) => [i.name, i.family])).toEqual([['VI_OUT', 4], ['VI_IN', 4], ['VI_OUT6', 6], ['VI_IN6', 6]])
    expect(p.conntrack_sync!.family).toBe('ipv6')
    expect(p.drill.probes!.client.address6).toBe('fd00:10::100')
  })

  it('IPv6 text is made canonical in the model (as conntrack and ip print it)', () => {
    const r = parseInventory(variant('dualstack', [[...P, 'nat', 'dnat', 1, 'to'], 'FD00:0011:0:0::0060'], [[...P, 'routes', 1, 'to'], 'fd00:12:0::/64']), 'v.yaml')
    expect(r.issues).toEqual([])
    expect(r.model!.pairs[0]!.nat.dnat[1]!.to).toBe('fd00:11::60')
    expect(r.model!.pairs[0]!.routes[1]!.to).toBe('fd00:12::/64')
  })

  it.each([
    ['an IPv6 management address', [...N0, 'address'], 'fd00:10::11'],
    ['an IPv6 real server behind an IPv6 VIP', [...P, 'routes', 1, 'via'], 'fd00:11::51'],
    ['an IPv6 VIP of prefix /128', [...P, 'vrrp', 'instances', 3, 'vips'], ['fd00:11::10/128']],
    ['IPv6 instances sharing the VRIDs of the IPv4 ones', [...P, 'vrrp', 'instances', 2, 'vrid'], 61],
  ] as [string, (string | number)[], unknown][])('accepts %s', (_, path, value) => {
    expect(issuesOf(variant('dualstack', [path, value]))).toEqual([])
  })

  it.each([
    ['a zone index', [...P, 'vrrp', 'instances', 2, 'vips'], ['fd00:10::10%ens3/64'], 'a zone index ("%ens3") is not allowed'],
    ['an IPv4-mapped address', [...P, 'routes', 1, 'via'], '::ffff:192.168.11.50', 'is an IPv4-mapped IPv6 address; write the IPv4 address 192.168.11.50 instead'],
    ['prefix 129', [...N0, 'addresses', 'sync'], ['192.168.13.11/24', 'fd00:13::11/129'], 'prefix length 129 is out of range 0..128 for IPv6'],
    ['no prefix', [...P, 'vrrp', 'instances', 3, 'vips'], ['fd00:11::10'], 'has no prefix length; expected address/prefix such as fd00:11::10/64'],
    ['a wrong prefix for the segment', [...P, 'vrrp', 'instances', 3, 'vips'], ['fd00:11::10/56'], 'VIP fd00:11::10/56 has prefix /56 but "inside" on node fw1a is /64'],
    ['a link-local VIP', [...P, 'vrrp', 'instances', 3, 'vips'], ['fe80::10/64'], 'is link-local'],
    ['a VIP outside the IPv6 subnet', [...P, 'vrrp', 'instances', 3, 'vips'], ['fd00:99::10/64'], 'VIP fd00:99::10 is outside fd00:11::/64'],
    ['mixed families in one instance', [...P, 'vrrp', 'instances', 1, 'vips'], ['192.168.11.10/24', 'fd00:11::10/64'], 'an instance carries one family'],
    ['two IPv6 addresses on one interface', [...N0, 'addresses', 'sync'], ['fd00:13::11/64', 'fd00:13::21/64'], 'a second IPv6 address'],
    ['an IPv6-only interface', [...N0, 'addresses', 'sync'], 'fd00:13::11/64', 'an interface needs an IPv4 address next to its IPv6 one'],
    ['a NAT66 rule mixing families', [...P, 'nat', 'dnat', 1, 'to'], '192.168.11.60', 'to 192.168.11.60 is IPv4 but dst fd00:10::60 is IPv6; one rule is one family'],
    ['a route to IPv6 via IPv4', [...P, 'routes', 1, 'via'], '192.168.11.50', 'gateway 192.168.11.50 is IPv4 but the route to fd00:12::/64 is IPv6'],
    ['an IPv6 gateway off-link', [...P, 'routes', 1, 'via'], 'fd00:77::1', 'gateway fd00:77::1 is not inside any IPv6 subnet of fw1a'],
    ['sync over IPv6 without IPv6 on the sync link', [...N1, 'addresses', 'sync'], '192.168.13.12/24', 'sync over IPv6 (family: ipv6) needs an IPv6 address on "sync", and node fw1b has none'],
    ['an IPv6 subnet with host bits', [...P, 'filter', 'allow', 3, 'src'], 'fd00:11::1/64', 'fd00:11::1/64 has host bits set; write the subnet as fd00:11::/64'],
    ['a multicast VIP', [...P, 'vrrp', 'instances', 3, 'vips'], ['ff02::12/64'], 'is a multicast address'],
    ['garbage', [...P, 'nat', 'snat', 1, 'to'], 'fd00::10::1', 'expected an IPv6 address such as 2001:db8::40'],
    ['VRRP auth with IPv6 instances (VRRPv3 has none)', ['defaults', 'vrrp', 'auth'], { type: 'PASS', password: 'x' }, 'instance VI_OUT6 of pair fw1 is IPv6, which runs VRRPv3, and VRRPv3 has no authentication'],
  ] as [string, (string | number)[], unknown, string][])('refuses %s with a clear message', (_, path, value, message) => {
    const r = issuesOf(variant('dualstack', [path, value]))
    expect(r.length).toBeGreaterThan(0)
    expect(r.join('\n')).toContain(message)
  })

  it('refuses VRRP auth with version 3, naming the field (keepalived -t fails on it)', () => {
    const r = issuesOf(variant('firewall', [['defaults', 'vrrp', 'version'], 3], [['defaults', 'vrrp', 'auth'], { type: 'AH', password: 'x' }]))
    expect(r).toEqual([expect.stringMatching(/defaults\.vrrp\.auth: VRRP version 3 has no authentication; remove vrrp\.auth or use version 2$/)])
  })

  // Every value that reaches a config file or a command line, with characters that would escape.
  it.each([
    ['site', ['site'], 'lab\nx'],
    ['pair name', [...P, 'name'], 'fw1;id'],
    ['node name', [...N0, 'name'], 'fw1a`id`'],
    ['sync group', [...P, 'vrrp', 'sync_group'], 'G1{'],
    ['instance name', [...P, 'vrrp', 'instances', 0, 'name'], 'VI 1'],
    ['device', [...N0, 'interfaces', 'sync'], 'ens5 '],
    ['log prefix', [...P, 'filter', 'log_dropped'], "DROP'"],
    ['ssh user', ['defaults', 'ssh', 'user'], 'root;id'],
    ['ssh identity', ['defaults', 'ssh', 'identity'], 'a\u0000b'],
    ['sysctl value', [...P, 'sysctls'], { 'net.ipv4.ip_forward': '1 && reboot' }],
    ['sysctl key', [...P, 'sysctls'], { 'net.ipv4/../../x': 1 }],
  ] as [string, (string | number)[], unknown][])('%s with unsafe characters is refused', (_, path, value) => {
    const r = issuesOf(variant('firewall', [path, value]))
    expect(r.length).toBe(1)
    expect(r[0]).toMatch(/expected|cannot contain/)
  })
})

describe('robustness', () => {
  // A seeded fuzz: replace one value of a good base at a time with a value of another shape.
  // parseInventory must never throw, and must either build a model or say what is wrong.
  it('never throws on mutated inventories', () => {
    let seed = 2
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31
      return seed % n
    }
    const odd: unknown[] = [null, 0, -1, 1.5, 65536, true, '', 'constructor', '__proto__', 'toString', 'x'.repeat(300), 'a\nb', '1.2.3.4/40', 'fd00::1', [], [null], {}, { constructor: 'x' }, { __proto__: 1 }]
    const paths = (node: unknown, path: (string | number)[] = []): (string | number)[][] => {
      if (Array.isArray(node)) return [path, ...node.flatMap((v, k) => paths(v, [...path, k]))]
      if (node && typeof node === 'object') return [path, ...Object.entries(node).flatMap(([k, v]) => paths(v, [...path, k]))]
      return [path]
    }
    let checked = 0
    for (const name of ['firewall', 'loadbalancer', 'host', 'full']) {
      const all = paths(parseDocument(base(name)).toJS()).filter((p) => p.length > 0)
      for (let i = 0; i < 150; i++) {
        const text = variant(name, [all[rand(all.length)]!, odd[rand(odd.length)]])
        const r = parseInventory(text, 'fuzz.yaml')
        expect(r.model !== null || r.issues.length > 0).toBe(true)
        for (const issue of r.issues) expect(issue.line).toBeGreaterThan(0)
        checked++
      }
    }
    expect(checked).toBe(600)
  })
})
