import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createHash } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { exec } from '@hafw/core'

/** `hafw render` as an operator runs it (the built CLI). */
const cli = (args: string[]) => exec(process.execPath, ['packages/cli/bin/run.js', ...args], { allowFail: true, timeoutMs: 120_000 })

describe('hafw render', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hafw-render-test-'))
  beforeAll(async () => {
    await exec('npx', ['tsc', '-b', 'packages/cli'], { timeoutMs: 300_000 })
  }, 300_000)
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('writes DIR/<node>/<path> and a manifest whose sha256 and modes match the files', async () => {
    const r = await cli(['render', 'inventory/lab.yaml', '--out', join(dir, 'a')])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/^fw1a: 12 files and manifest.json in /m)
    for (const node of ['fw1a', 'fw1b', 'lb1a', 'lb1b']) {
      const m = JSON.parse(readFileSync(join(dir, 'a', node, 'manifest.json'), 'utf8')) as { node: string; files: { path: string; sha256: string; mode: string }[] }
      expect(m.node).toBe(node)
      for (const f of m.files) {
        const p = join(dir, 'a', node, f.path)
        expect(createHash('sha256').update(readFileSync(p)).digest('hex')).toBe(f.sha256)
        expect((statSync(p).mode & 0o777).toString(8).padStart(4, '0')).toBe(f.mode)
      }
    }
  })

  it('renders byte-identical trees twice; --pair/--node/--profile select', async () => {
    await cli(['render', 'inventory/reference.yaml', '--out', join(dir, 'b1')])
    await cli(['render', 'inventory/reference.yaml', '--out', join(dir, 'b2')])
    const d = await exec('diff', ['-r', join(dir, 'b1'), join(dir, 'b2')], { allowFail: true })
    expect(d.code, d.stdout).toBe(0)
    const r = await cli(['render', 'inventory/reference.yaml', '--out', join(dir, 'c'), '--node', 'app1', '--profile', 'rhel', '--json'])
    expect(r.code).toBe(0)
    expect((JSON.parse(r.stdout) as { nodes: { node: string }[] }).nodes.map((n) => n.node)).toEqual(['app1'])
    expect(readFileSync(join(dir, 'c', 'app1', 'etc/sysconfig/network-scripts/rule-eth1'), 'utf8')).toContain('fwmark 0x1 table ops')
  })

  it('an unknown node is an error naming the nodes there are', async () => {
    const r = await cli(['render', 'inventory/lab.yaml', '--out', join(dir, 'd'), '--node', 'fw9'])
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/no node named "fw9" \(nodes: fw1a, fw1b, lb1a, lb1b\)/)
  })
})
