import { describe, expect, it } from 'vitest'
import { readFileSync } from 'node:fs'
import { DEFAULTS, parseInventory } from '@hafw/inventory'

const load = (f: string) => parseInventory(readFileSync(f, 'utf8'), f)

describe('inventory model', () => {
  it('loads the reference inventory with defaults merged', () => {
    const r = load('inventory/reference.yaml')
    expect(r.issues).toEqual([])
    const edge = r.model!.pairs.find((p) => p.name === 'edge1')!
    expect(edge.nodes.map((n) => n.name)).toEqual(['cent7i', 'cent7j'])
    expect(edge.vrrp.advert_int).toBe(1)
    expect(edge.conntrack_sync).toMatchObject({ mode: 'ftfw', port: 3780, checksum: true, interface: 'sync' })
    expect(edge.nodes[0].ssh).toMatchObject({ user: 'root', port: 22, known_hosts: './known_hosts', host: '192.168.0.41' })
    expect(edge.nodes[0].interfaces.sync).toMatchObject({ device: 'enp0s9', address: { ip: '192.168.3.41', prefix: 24 } })
    const lb = r.model!.pairs.find((p) => p.name === 'lb1')!
    expect(lb.conntrack_sync).toBeNull()
    expect(lb.virtual_servers[0]!.real_servers[0]!.check).toMatchObject({ type: 'smtp', connect_timeout: 15, retry: 2 })
    expect(r.model!.hosts[0]!.pbr[0]).toMatchObject({ fwmark: '0x1', table: 100, table_name: 'ops' })
  })

  it('loads the lab inventory', () => {
    expect(load('inventory/lab.yaml').issues).toEqual([])
  })
})

/*
 * Defaults: built-in DEFAULTS < inventory `defaults` < pair < node. Each layer sets only some
 * fields so the test shows which layer each value came from.
 */
describe('defaults merge', () => {
  const text = `
version: 1
site: lab
defaults:
  profile: rhel
  ssh: { user: admin, port: 2222, identity: /keys/site, sudo: true }
  vrrp: { advert_int: 3, version: 3, garp_master_delay: 5 }
  conntrack_sync: { mode: alarm, port: 3781, hash_size: 4096 }
  firewall: { backend: nftables, ssh_from: [198.18.0.0/15] }
pairs:
  - name: fw1
    kind: firewall
    ssh: { port: 2200, identity: /keys/fw1 }
    firewall: { ownership: chains }
    nodes:
      - name: fw1a
        address: 192.168.10.11
        priority: 150
        ssh: { identity: /keys/fw1a }
        interfaces: { outside: ens3, sync: ens5 }
        addresses: { outside: 192.168.10.11/24, sync: 192.168.13.11/24 }
      - name: fw1b
        address: 192.168.10.12
        priority: 100
        interfaces: { outside: ens3, sync: ens5 }
        addresses: { outside: 192.168.10.12/24, sync: 192.168.13.12/24 }
    vrrp:
      advert_int: 1
      instances:
        - { name: VI_OUT, interface: outside, vrid: 61, vips: [192.168.10.10/24] }
    conntrack_sync: { interface: sync, mode: notrack }
hosts:
  - name: app1
    address: 10.0.0.10
    profile: debian
    ssh: { user: ops }
    interfaces: { main: eth0 }
    addresses: { main: 10.0.0.10/24 }
    pbr:
      - { interface: main, table: 100, table_name: up, fwmark: 0x10, gateway: 10.0.0.1 }
`
  const m = parseInventory(text, 'layers.yaml').model!
  const p = m.pairs[0]!

  it('ssh: node over pair over defaults over built-in', () => {
    expect(p.nodes[0].ssh).toEqual({ host: '192.168.10.11', user: 'admin', port: 2200, identity: '/keys/fw1a', known_hosts: DEFAULTS.ssh.known_hosts, sudo: true, connect_timeout: DEFAULTS.ssh.connect_timeout })
    expect(p.nodes[1].ssh).toMatchObject({ host: '192.168.10.12', user: 'admin', port: 2200, identity: '/keys/fw1' })
    expect(m.hosts[0]!.ssh).toMatchObject({ host: '10.0.0.10', user: 'ops', port: 2222, identity: '/keys/site' })
  })

  it('vrrp: pair over defaults over built-in', () => {
    expect(p.vrrp).toMatchObject({ advert_int: 1, version: 3, garp_master_delay: 5, unicast: DEFAULTS.vrrp.unicast, nopreempt: false, sync_group: 'fw1_group' })
    expect(p.vrrp.instances[0]).toMatchObject({ lvs_sync_daemon: false, track_interfaces: ['outside'] })
  })

  it('conntrack_sync: pair over defaults over built-in', () => {
    expect(p.conntrack_sync).toEqual({ ...DEFAULTS.conntrack_sync, interface: 'sync', mode: 'notrack', port: 3781, hash_size: 4096 })
  })

  it('firewall and profile: pair/host over defaults', () => {
    expect(p.firewall).toEqual({ backend: 'nftables', ownership: 'chains', ssh_from: ['198.18.0.0/15'] })
    expect(p.profile).toBe('rhel')
    expect(m.hosts[0]!.profile).toBe('debian')
    expect(m.hosts[0]!.firewall).toEqual({ backend: 'nftables', ownership: 'full', ssh_from: ['198.18.0.0/15'] })
  })

  it('sections left out get their documented defaults', () => {
    expect(p.filter).toEqual({ forward_policy: DEFAULTS.filter.forward_policy, allow: [], log_dropped: false })
    expect(p.nat).toEqual({ dnat: [], snat: [] })
    expect(p.routes).toEqual([])
    expect(p.virtual_servers).toEqual([])
    expect(p.drill).toEqual({ max_gap_ms: {} })
    expect(m.hosts[0]!.pbr[0]!.fwmark).toBe('0x10')
  })

  it('an inventory without defaults gets the built-in ones', () => {
    const bare = parseInventory(readFileSync('test/fixtures/inventory/good/loadbalancer.yaml', 'utf8'), 'lb.yaml').model!
    const lb = bare.pairs[0]!
    expect(lb.nodes[0].ssh).toEqual({ host: '192.168.11.21', ...DEFAULTS.ssh })
    expect(lb.profile).toBe(DEFAULTS.profile)
    expect(lb.firewall).toEqual({ ...DEFAULTS.firewall, ssh_from: [] })
    expect(lb.conntrack_sync).toBeNull()
    const [smtp, misc] = lb.virtual_servers[0]!.real_servers
    expect(smtp).toMatchObject({ weight: 1, inhibit_on_failure: false, check: { type: 'smtp', ...DEFAULTS.check } })
    expect(misc!.check).toMatchObject({ type: 'misc', misc_path: '/usr/local/bin/check-smtp 192.168.12.62' })
    expect(lb.virtual_servers[0]!.delay_loop).toBe(DEFAULTS.virtual_server.delay_loop)
    expect(lb.virtual_servers[1]!.real_servers[0]!.check!.url).toEqual({ path: '/health', status_code: 200 })
    expect(lb.vrrp.auth).toEqual({ type: 'PASS', password: 's3cret' })
  })
})
