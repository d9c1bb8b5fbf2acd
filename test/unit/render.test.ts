import { describe, expect, it } from 'vitest'
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { parseInventory, type Model } from '@hafw/inventory'
import { compileTemplate, manifest, pairNodeView, renderInventory, renderTemplate, RenderError, SCRIPTS } from '@hafw/render'

const load = (file: string): Model => {
  const r = parseInventory(readFileSync(file, 'utf8'), file)
  if (!r.model) throw new Error(r.issues.map((i) => i.message).join('\n'))
  return r.model
}
const ref = () => load('inventory/reference.yaml')
const file = (m: Model, node: string, path: string) => {
  const f = renderInventory(m, { node })[0]!.files.find((x) => x.path === path)
  if (!f) throw new Error(`${node} has no ${path}`)
  return f.content
}

describe('render API', () => {
  it('renders every node of every pair and every host, with path, mode, owner, sha256, service and action', () => {
    const nodes = renderInventory(ref())
    expect(nodes.map((n) => [n.node, n.pair ?? null, n.kind])).toEqual([
      ['cent7i', 'edge1', 'firewall'],
      ['cent7j', 'edge1', 'firewall'],
      ['cent7g', 'lb1', 'loadbalancer'],
      ['cent7h', 'lb1', 'loadbalancer'],
      ['app1', null, 'host'],
    ])
    for (const n of nodes) {
      for (const f of n.files) {
        expect(f.path.startsWith('/')).toBe(true)
        expect(f.sha256).toBe(createHash('sha256').update(f.content).digest('hex'))
        expect(f.owner).toBe('root:root')
        expect(f.mode).toMatch(/^0[0-7]{3}$/)
        expect(f.content.endsWith('\n')).toBe(true)
      }
      expect(n.files.map((f) => f.path)).toEqual([...n.files.map((f) => f.path)].sort())
    }
    const fw = nodes[0]!.files
    const by = (p: string) => fw.find((f) => f.path === p)!
    expect(by('/etc/keepalived/keepalived.conf')).toMatchObject({ service: 'keepalived', action: 'reload' })
    expect(by('/etc/conntrackd/conntrackd.conf')).toMatchObject({ service: 'conntrackd', action: 'restart' })
    expect(by('/etc/iptables/rules.v4')).toMatchObject({ service: 'firewall', action: 'run', mode: '0600' })
    expect(by(SCRIPTS.notify)).toMatchObject({ mode: '0755', service: 'keepalived', action: 'none' })
    expect(by('/etc/sysctl.d/90-hafw.conf')).toMatchObject({ service: 'sysctl', action: 'run' })
  })

  it('selects by pair and node, and names what exists when a name is wrong', () => {
    const m = ref()
    expect(renderInventory(m, { pair: 'lb1' }).map((n) => n.node)).toEqual(['cent7g', 'cent7h'])
    expect(renderInventory(m, { pair: 'edge1', node: 'cent7j' }).map((n) => n.node)).toEqual(['cent7j'])
    expect(renderInventory(m, { node: 'app1' }).map((n) => n.node)).toEqual(['app1'])
    expect(() => renderInventory(m, { pair: 'nope' })).toThrow(/no pair named "nope" \(pairs: edge1, lb1\)/)
    expect(() => renderInventory(m, { pair: 'lb1', node: 'cent7i' })).toThrow(/no node named "cent7i" in pair lb1/)
  })

  it('manifest lists files without content, the services in apply order and the units to enable', () => {
    const n = renderInventory(ref(), { node: 'cent7i' })[0]!
    const m = manifest(n)
    expect(m).toMatchObject({ version: 1, site: 'lab-a', node: 'cent7i', pair: 'edge1', kind: 'firewall', profile: 'debian' })
    expect(m.files.length).toBe(n.files.length)
    expect(m.files.every((f) => !('content' in f))).toBe(true)
    expect(m.services.map((s) => s.service)).toEqual(['systemd', 'firewall', 'sysctl', 'routing', 'conntrackd', 'keepalived'])
    expect(m.services.find((s) => s.service === 'keepalived')).toMatchObject({ actions: ['reload'], commands: { reload: ['systemctl', 'reload', 'keepalived.service'] } })
    expect(m.enable).toEqual(['hafw-firewall.service', 'hafw-routing.service', 'conntrackd.service', 'keepalived.service'])
  })
})

describe('keepalived.conf', () => {
  it('unicast peers are the peer address on that interface; authentication is rendered', () => {
    const m = ref()
    const p = m.pairs[0]!
    p.vrrp.unicast = true
    p.vrrp.auth = { type: 'PASS', password: 'pw-1' }
    const k = file(m, 'cent7j', '/etc/keepalived/keepalived.conf')
    expect(k).toMatch(/vrrp_instance VI_1 \{[\s\S]*?unicast_src_ip 192\.168\.0\.42\n\s+unicast_peer \{\n\s+192\.168\.0\.41\n/)
    expect(k).toMatch(/vrrp_instance VI_2 \{[\s\S]*?unicast_src_ip 192\.168\.1\.42\n\s+unicast_peer \{\n\s+192\.168\.1\.41\n/)
    expect(k).toContain('auth_type PASS\n        auth_pass "pw-1"')
  })

  it('a single instance gets its notify lines itself (keepalived rejects a one-member sync group)', () => {
    const m = ref()
    m.pairs[0]!.vrrp.instances = m.pairs[0]!.vrrp.instances.slice(0, 1)
    const k = file(m, 'cent7i', '/etc/keepalived/keepalived.conf')
    expect(k).not.toContain('vrrp_sync_group')
    expect(k).toMatch(/vrrp_instance VI_1 \{[\s\S]*notify_master "\/usr\/local\/sbin\/hafw-notify primary"\n/)
  })

  it('all four checks, persistence and lvs_sync_daemon render in keepalived 2.x syntax', () => {
    const m = ref()
    const vs = m.pairs[1]!.virtual_servers[0]!
    vs.persistence_timeout = 600
    vs.real_servers[0]!.check = { type: 'http', connect_timeout: 3, retry: 1, delay_before_retry: 2, url: { path: '/health', status_code: 204 } }
    vs.real_servers[1]!.check = { type: 'misc', connect_timeout: 7, retry: 1, delay_before_retry: 2, misc_path: '/usr/local/bin/probe --port=25' }
    vs.real_servers.push({ address: '192.168.2.63', port: 25, weight: 2, inhibit_on_failure: false, check: { type: 'tcp', connect_timeout: 4, retry: 3, delay_before_retry: 1, connect_port: 2525 } })
    const k = file(m, 'cent7g', '/etc/keepalived/keepalived.conf')
    expect(k).toContain('    lvs_sync_daemon enp0s8 instance52\n')
    expect(k).toContain('    persistence_timeout 600\n')
    expect(k).toMatch(/HTTP_GET \{\n\s+url \{\n\s+path \/health\n\s+status_code 204\n\s+\}\n\s+connect_timeout 3\n/)
    expect(k).toMatch(/MISC_CHECK \{\n\s+misc_path "\/usr\/local\/bin\/probe --port=25"\n\s+misc_timeout 7\n/)
    expect(k).toMatch(/real_server 192\.168\.2\.63 25 \{\n\s+weight 2\n\s+TCP_CHECK \{\n\s+connect_timeout 4\n\s+connect_port 2525\n/)
  })

  it('refuses two lvs_sync_daemon instances (keepalived runs one)', () => {
    const m = ref()
    for (const i of m.pairs[1]!.vrrp.instances) i.lvs_sync_daemon = true
    expect(() => renderInventory(m, { pair: 'lb1' })).toThrow(/lvs_sync_daemon is set on instance51 and instance52/)
  })
})

describe('conntrackd.conf', () => {
  it('ALARM and NOTRACK modes, checksum off', () => {
    const m = ref()
    m.pairs[0]!.conntrack_sync!.mode = 'alarm'
    m.pairs[0]!.conntrack_sync!.checksum = false
    const c = file(m, 'cent7i', '/etc/conntrackd/conntrackd.conf')
    expect(c).toContain('    Mode ALARM {\n')
    expect(c).toContain('        Checksum off\n')
    m.pairs[0]!.conntrack_sync!.mode = 'notrack'
    expect(file(m, 'cent7i', '/etc/conntrackd/conntrackd.conf')).toContain('    Mode NOTRACK {\n')
  })
})

describe('dual stack', () => {
  const ds = () => load('test/fixtures/inventory/good/dualstack.yaml')
  it('keepalived: IPv6 instances are native IPv6 VRRPv3 in the same sync group, IPv4 ones keep their version', () => {
    const k = file(ds(), 'fw1a', '/etc/keepalived/keepalived.conf')
    expect(k).toMatch(/group \{\n\s+VI_OUT\n\s+VI_IN\n\s+VI_OUT6\n\s+VI_IN6\n/)
    const six = k.slice(k.indexOf('vrrp_instance VI_OUT6'))
    expect(six).toMatch(/^vrrp_instance VI_OUT6 \{\n[\s\S]*?version 3\n[\s\S]*?native_ipv6\n/)
    expect(six).toContain('        fd00:10::10/64 dev ens3\n        fd00:10::60/64 dev ens3\n')
    expect(six.slice(0, six.indexOf('\n}\n'))).not.toContain(' brd ')
    expect(k.slice(k.indexOf('vrrp_instance VI_OUT '), k.indexOf('vrrp_instance VI_IN '))).toContain('version 2\n')
  })

  it('keepalived: unicast IPv6 instances use the IPv6 addresses of both nodes', () => {
    const m = ds()
    m.pairs[0]!.vrrp.unicast = true
    const k = file(m, 'fw1a', '/etc/keepalived/keepalived.conf')
    const six = k.slice(k.indexOf('vrrp_instance VI_IN6'))
    expect(six).toContain('unicast_src_ip fd00:11::11\n    unicast_peer {\n        fd00:11::12\n')
    expect(k.slice(k.indexOf('vrrp_instance VI_IN '), k.indexOf('vrrp_instance VI_OUT6'))).toContain('unicast_src_ip 192.168.11.11\n')
  })

  it('conntrackd: syncs over IPv6, ignores the node\'s own addresses of both families, accepts ICMPv6', () => {
    const c = file(ds(), 'fw1a', '/etc/conntrackd/conntrackd.conf')
    expect(c).toContain('IPv6_address fd00:13::11\n        IPv6_Destination_Address fd00:13::12\n')
    expect(c).not.toContain('IPv4_Destination_Address')
    expect(c).toContain('            ICMP\n            IPv6-ICMP\n')
    expect(c).toMatch(/IPv4_address 127\.0\.0\.1\n(\s+IPv4_address 192\.168\.1[013]\.11\n){3}\s+IPv6_address ::1\n\s+IPv6_address fd00:10::11\n\s+IPv6_address fd00:11::11\n\s+IPv6_address fd00:13::11\n/)
  })

  it('iptables: one file per family, each with its own rules, both loaded by hafw-firewall', () => {
    const nodes = renderInventory(ds(), { node: 'fw1a' })[0]!.files
    const v4 = nodes.find((f) => f.path === '/etc/iptables/rules.v4')!
    const v6 = nodes.find((f) => f.path === '/etc/iptables/rules.v6')!
    expect([v4.check, v6.check, v6.template]).toEqual(['iptables', 'ip6tables', 'firewall/iptables.rules.hbs'])
    expect(v4.content).not.toMatch(/fd00|icmpv6|ipv6-icmp/)
    expect(v6.content).not.toMatch(/192\.168\./)
    // failover guards on the IPv6 VIPs, after neighbour discovery is let in
    const nd = v6.content.indexOf('--icmpv6-type neighbour-solicitation')
    expect(nd).toBeGreaterThan(0)
    expect(v6.content.indexOf('-A INPUT -d fd00:10::10 -m conntrack --ctstate INVALID -j DROP')).toBeGreaterThan(nd)
    expect(v6.content).toContain('-A INPUT -d fd00:11::10 -p tcp ! --syn -m conntrack --ctstate NEW -j DROP')
    expect(v6.content).toContain('-A INPUT -i ens5 -s fd00:13::12 -p udp --dport 3780 -j ACCEPT')
    expect(v6.content).toContain('-A PREROUTING -i ens3 -p tcp -d fd00:10::60 --dport 25 -j DNAT --to-destination fd00:11::60')
    expect(v6.content).toContain('-A POSTROUTING -o ens3 -s fd00:11::/64 -j SNAT --to-source fd00:10::10')
    // a rule without addresses is in both files, `proto: icmp` as each family's ICMP
    expect(v4.content).toContain('-A FORWARD -i ens4 -p icmp -j ACCEPT')
    expect(v6.content).toContain('-A FORWARD -i ens4 -p ipv6-icmp -j ACCEPT')
    // sync travels over IPv6: its rules are in the IPv6 file only
    expect(v4.content).not.toContain('3780')
    const script = nodes.find((f) => f.path === SCRIPTS.firewall)!.content
    expect(script).toContain('iptables-restore "$RULES"\nip6tables-restore "$RULES6"\n')
    m6Chains: {
      const m = ds()
      m.pairs[0]!.firewall.ownership = 'chains'
      const s = file(m, 'fw1a', SCRIPTS.firewall)
      expect(s).toContain('ip6tables-restore --noflush "$RULES6"')
      expect(s).toContain('jump ip6tables filter INPUT HAFW-INPUT')
      expect(file(m, 'fw1a', '/etc/hafw/ip6tables.rules')).toMatch(/^:HAFW-INPUT - \[0:0\]$/m)
      break m6Chains
    }
  })

  it('nftables: one inet table with the rules of both families', () => {
    const m = ds()
    m.pairs[0]!.firewall.backend = 'nftables'
    const n = file(m, 'fw1a', '/etc/nftables.conf')
    expect(n).toContain('table inet hafw {')
    expect(n).toContain('ip6 daddr { fd00:10::10, fd00:10::60, fd00:11::10 } ct state invalid drop')
    expect(n).toContain('ip daddr { 192.168.10.10, 192.168.10.60, 192.168.11.10 } ct state invalid drop')
    expect(n).toContain('iifname "ens3" ip6 daddr fd00:10::60 tcp dport 25 dnat ip6 to fd00:11::60')
    expect(n).toContain('iifname "ens3" meta nfproto ipv6 meta l4proto 112 accept')
    expect(n).toContain('iifname "ens5" ip6 saddr fd00:13::12 udp dport 3780 accept')
    expect(n).toContain('iifname "ens4" meta nfproto ipv6 meta l4proto ipv6-icmp accept')
    expect(n.indexOf('nd-neighbor-solicit')).toBeLessThan(n.indexOf('ip6 daddr { fd00:10::10'))
  })

  it('NAT66 to a port: the address in brackets', () => {
    const m = ds()
    m.pairs[0]!.nat.dnat[1]!.to_port = 2525
    expect(file(m, 'fw1a', '/etc/iptables/rules.v6')).toContain('--to-destination [fd00:11::60]:2525')
    m.pairs[0]!.firewall.backend = 'nftables'
    expect(file(m, 'fw1a', '/etc/nftables.conf')).toContain('dnat ip6 to [fd00:11::60]:2525')
  })

  it('routes and sysctls: IPv6 routes by ip -6, IPv6 forwarding on', () => {
    const r = file(ds(), 'fw1a', SCRIPTS.routing)
    expect(r).toContain('step ip route replace 192.168.12.0/24 via 192.168.11.50 dev ens4')
    expect(r).toContain('step ip -6 route replace fd00:12::/64 via fd00:11::50 dev ens4')
    expect(file(ds(), 'fw1a', '/etc/sysctl.d/90-hafw.conf')).toContain('net.ipv6.conf.all.forwarding = 1')
    expect(file(ref(), 'cent7i', '/etc/sysctl.d/90-hafw.conf')).not.toContain('ipv6')
  })

  it('rhel: IPv6 routes and policy rules go to route6-DEV and rule6-DEV', () => {
    const m = ds()
    const r = renderInventory(m, { node: 'fw1a', profile: 'rhel' })[0]!.files
    expect(r.find((f) => f.path === '/etc/sysconfig/network-scripts/route6-ens4')!.content).toContain('fd00:12::/64 via fd00:11::50\n')
    expect(r.find((f) => f.path === '/etc/sysconfig/network-scripts/route-ens4')!.content).not.toContain('fd00')
    expect(r.some((f) => f.path === '/etc/sysconfig/ip6tables')).toBe(true)
  })
})

describe('ruleset variants', () => {
  it('ownership chains (iptables): only HAFW-* chains, no built-in policies, jumps kept by hafw-firewall', () => {
    const m = ref()
    m.pairs[0]!.firewall.ownership = 'chains'
    const rules = file(m, 'cent7i', '/etc/hafw/iptables.rules')
    expect(rules).not.toMatch(/^:(INPUT|FORWARD|OUTPUT|PREROUTING|POSTROUTING) /m)
    expect(rules).not.toMatch(/^-A (INPUT|FORWARD|OUTPUT|PREROUTING|POSTROUTING) /m)
    expect(rules.match(/^:HAFW-[A-Z]+ - \[0:0\]$/gm)!.length).toBe(6)
    expect(rules.split('\n').filter((l) => !l.startsWith('#')).join('\n')).not.toMatch(/DOCKER|KUBE/)
    const script = file(m, 'cent7i', SCRIPTS.firewall)
    expect(script).toContain('iptables-restore --noflush "$RULES"')
    expect(script).toContain('jump iptables filter FORWARD HAFW-FORWARD')
    expect(script).toContain('jump iptables nat PREROUTING HAFW-PREROUTING')
    // an IPv4-only node leaves ip6tables alone
    expect(script).not.toContain('ip6tables')
    // the forward drop is scoped to the pair's interfaces: other traffic returns to the host's chain
    expect(rules).toContain('-A HAFW-FORWARD -i enp0s3 -j DROP')
    expect(rules).not.toMatch(/^-A HAFW-FORWARD -j DROP$/m)
    expect(file(m, 'cent7i', '/etc/systemd/system/hafw-firewall.service')).toContain('After=network.target docker.service firewalld.service')
  })

  it('nftables: full flushes the ruleset, chains replaces only table inet hafw', () => {
    const m = ref()
    m.pairs[0]!.firewall.backend = 'nftables'
    const full = file(m, 'cent7i', '/etc/nftables.conf')
    expect(full).toMatch(/^flush ruleset$/m)
    expect(full).toContain('type filter hook input priority filter; policy drop;')
    expect(full).toContain('ip daddr { 192.168.0.40, 192.168.0.60, 192.168.0.88, 192.168.1.40 } ct state invalid drop')
    expect(full).toContain('iifname "enp0s3" ip daddr 192.168.0.60 tcp dport 25 dnat ip to 192.168.1.60')
    expect(full).toContain('oifname "enp0s3" ip saddr 192.168.1.0/24 snat ip to 192.168.0.40')
    expect(full).not.toMatch(/icmpv6|ip6 /)
    expect(full).toContain('log prefix "DROPPED " level info')
    m.pairs[0]!.firewall.ownership = 'chains'
    const chains = file(m, 'cent7i', '/etc/hafw/hafw.nft')
    expect(chains).not.toMatch(/flush ruleset/)
    expect(chains).toMatch(/^table inet hafw\ndelete table inet hafw\n/m)
    expect(chains).toContain('type filter hook input priority filter; policy accept;')
  })

  it('ssh_from restricts SSH; without it SSH is open (the lab manages nodes over mgmt0)', () => {
    const m = ref()
    expect(file(m, 'cent7i', '/etc/iptables/rules.v4')).toContain('-A INPUT -p tcp --dport 22 -j ACCEPT')
    m.pairs[0]!.firewall.ssh_from = ['198.18.0.0/15']
    const r = file(m, 'cent7i', '/etc/iptables/rules.v4')
    expect(r).toContain('-A INPUT -s 198.18.0.0/15 -p tcp --dport 22 -j ACCEPT')
    expect(r).not.toMatch(/-i \S+ -p tcp --dport 22/)
  })

  it('the race drops exist only where conntrack state is committed (not on the LVS pair)', () => {
    const m = ref()
    expect(file(m, 'cent7i', '/etc/iptables/rules.v4')).toContain('-A INPUT -d 192.168.0.60 -p tcp ! --syn -m conntrack --ctstate NEW -j DROP')
    expect(file(m, 'cent7i', '/etc/sysctl.d/90-hafw.conf')).toContain('net.netfilter.nf_conntrack_tcp_loose = 0')
    expect(file(m, 'cent7g', '/etc/iptables/rules.v4')).not.toContain('! --syn')
    expect(file(m, 'cent7g', '/etc/sysctl.d/90-hafw.conf')).not.toContain('tcp_loose')
    // keepalived may only start once the ruleset is loaded
    expect(file(m, 'cent7i', '/etc/systemd/system/keepalived.service.d/hafw.conf')).toMatch(/Requires=hafw-firewall.service\nAfter=hafw-firewall.service conntrackd.service hafw-routing.service/)
  })

  it("inventory sysctls override the design's defaults", () => {
    const m = ref()
    m.pairs[0]!.sysctls = { 'net.netfilter.nf_conntrack_max': 262144, 'net.ipv4.ip_forward': 1 }
    expect(file(m, 'cent7i', '/etc/sysctl.d/90-hafw.conf')).toMatch(/net\.ipv4\.ip_forward = 1\nnet\.netfilter\.nf_conntrack_max = 262144\nnet\.netfilter\.nf_conntrack_tcp_loose = 0\nnet\.netfilter\.nf_conntrack_timestamp = 1\n$/)
  })

  it('a route whose gateway no interface reaches is refused with the field to set', () => {
    const m = ref()
    m.pairs[0]!.routes = [{ to: '10.9.0.0/16', via: '172.16.0.1' }]
    expect(() => renderInventory(m, { node: 'cent7i' })).toThrow(/routes\[0\]: no interface has 172\.16\.0\.1 in its subnet; set routes\[0\]\.interface/)
  })
})

describe('strict templates', () => {
  it('a template that reads a missing field fails loudly', () => {
    const t = compileTemplate('router_id {{router_id}}\n{{missing.field}}\n', 'test.hbs')
    expect(() => t({ router_id: 'x' })).toThrow(RenderError)
    expect(() => t({ router_id: 'x' })).toThrow(/^template test\.hbs: .*\bmissing\b/)
  })

  it('a condition on a misspelt field fails too (Handlebars strict mode alone lets {{#if}} pass)', () => {
    const t = compileTemplate('{{#if nopreemt}}nopreempt{{/if}}\n', 'typo.hbs')
    expect(() => t({ nopreempt: true })).toThrow(/template typo\.hbs: template reads view\.nopreemt, which the view does not have/)
  })

  it('the real keepalived template fails when the view lacks a field it uses', () => {
    const m = ref()
    const v = pairNodeView(m, m.pairs[0]!, m.pairs[0]!.nodes[0]) as unknown as { keepalived: Record<string, unknown> }
    delete v.keepalived.router_id
    expect(() => renderTemplate('keepalived/keepalived.conf.hbs', v)).toThrow(/keepalived\.conf\.hbs: .*router_id/)
  })

  it('only registered helpers exist: unknown helpers and lookup/log are rejected when compiling', () => {
    expect(() => compileTemplate('{{shout name}}', 'h.hbs')).toThrow(/unknown helper shout/)
    expect(() => compileTemplate('{{lookup this "x"}}', 'h.hbs')).toThrow(/lookup/)
    expect(() => compileTemplate('{{log "x"}}', 'h.hbs')).toThrow(/log/)
  })

  it('output is not HTML-escaped', () => {
    expect(compileTemplate('{{a}}\n', 'e.hbs')({ a: '<x & "y">' })).toBe('<x & "y">\n')
  })
})

describe('injection: second line of defence', () => {
  it('refuses a value with a newline anywhere in the view', () => {
    const m = ref()
    m.pairs[0]!.nodes[0].name = 'cent7i\nvrrp_script evil {'
    expect(() => renderInventory(m, { pair: 'edge1' })).toThrow(/contains a control character \(newline\?\)/)
    const h = ref()
    h.hosts[0]!.pbr[0]!.table_name = 'ops\n200 evil'
    expect(() => renderInventory(h, { node: 'app1' })).toThrow(/view\.routing\.pbr\[0\]\.table_name contains a control character/)
  })

  it('quoting helpers refuse values that would leave their quotes', () => {
    const m = ref()
    m.pairs[0]!.filter.log_dropped = 'x" -j ACCEPT "'
    expect(() => renderInventory(m, { node: 'cent7i' })).toThrow(/cannot be double-quoted safely/)
    const s = ref()
    s.pairs[0]!.name = "edge1'; rm -rf / #"
    expect(() => renderInventory(s, { node: 'cent7i' })).toThrow(/cannot be shell-quoted safely/)
  })
})
