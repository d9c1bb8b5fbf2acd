import { describe, expect, it } from 'vitest'
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { parseInventory, type Model } from '@hafw/inventory'
import { manifest, renderInventory, type RenderedNode } from '@hafw/render'

/*
 * Golden files: `hafw render inventory/reference.yaml` byte for byte (test/golden/reference/),
 * the seed-000 host with the rhel profile (test/golden/reference-rhel/) and the dual-stack
 * fixture (test/golden/dualstack/). After an intended
 * template change: UPDATE_GOLDEN=1 npx vitest run --project unit test/unit/render-golden.test.ts
 */

const GOLDEN = 'test/golden'
const load = (file: string, as = file): Model => {
  const r = parseInventory(readFileSync(file, 'utf8'), as)
  if (!r.model) throw new Error(r.issues.map((i) => i.message).join('\n'))
  return r.model
}

function files(nodes: RenderedNode[]): Map<string, string> {
  const out = new Map<string, string>()
  for (const n of nodes) {
    for (const f of n.files) out.set(join(n.node, f.path), f.content)
    out.set(join(n.node, 'manifest.json'), JSON.stringify(manifest(n), null, 2) + '\n')
  }
  return out
}

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((e) => {
    const p = join(dir, e)
    return statSync(p).isDirectory() ? walk(p) : [p]
  })
}

function firstDifference(want: string, got: string): string {
  const a = want.split('\n')
  const b = got.split('\n')
  for (let i = 0; i < Math.max(a.length, b.length); i++) if (a[i] !== b[i]) return `line ${i + 1}:\n  golden:   ${a[i]}\n  rendered: ${b[i]}`
  return 'identical'
}

const sets: [string, () => RenderedNode[]][] = [
  ['reference', () => renderInventory(load('inventory/reference.yaml'))],
  ['reference-rhel', () => renderInventory(load('inventory/reference.yaml'), { node: 'app1', profile: 'rhel' })],
  // dual stack: ip6tables files next to the iptables ones, native IPv6 VRRPv3, sync over IPv6
  ['dualstack', () => renderInventory(load('test/fixtures/inventory/good/dualstack.yaml'))],
]

describe('golden files', () => {
  for (const [name, render] of sets) {
    it(`${name}: rendered files equal test/golden/${name} byte for byte`, () => {
      const dir = join(GOLDEN, name)
      const got = files(render())
      if (process.env.UPDATE_GOLDEN === '1') {
        rmSync(dir, { recursive: true, force: true })
        for (const [p, c] of got) {
          mkdirSync(dirname(join(dir, p)), { recursive: true })
          writeFileSync(join(dir, p), c)
        }
      }
      const golden = new Map(walk(dir).map((p) => [relative(dir, p), readFileSync(p, 'utf8')]))
      expect([...got.keys()].sort()).toEqual([...golden.keys()].sort())
      for (const [p, c] of got) {
        if (c !== golden.get(p)) expect.fail(`${name}/${p} differs from the golden file, ${firstDifference(golden.get(p)!, c)}`)
      }
    })
  }

  it('is deterministic: same inventory, byte-identical files, wherever the file was loaded from', () => {
    const a = files(renderInventory(load('inventory/reference.yaml')))
    const b = files(renderInventory(load('inventory/reference.yaml', '/somewhere/else/ref.yaml')))
    const c = files(renderInventory(load('inventory/lab.yaml')))
    const d = files(renderInventory(load('inventory/lab.yaml')))
    expect([...a]).toEqual([...b])
    expect([...c]).toEqual([...d])
    // no timestamps or paths of the machine that rendered
    for (const content of [...a.values(), ...c.values()]) {
      expect(content).not.toMatch(/20\d\d-\d\d-\d\dT|inventory\/|\/work\//)
    }
  })
})
