import { describe, expect, it } from 'vitest'
import { readFileSync } from 'node:fs'
import { parseInventory } from '@hafw/inventory'

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
