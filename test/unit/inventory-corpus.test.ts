import { describe, expect, it } from 'vitest'
import { readdirSync, readFileSync } from 'node:fs'
import { parseInventory } from '@hafw/inventory'

/*
 * The bad-inventory corpus: each file under test/fixtures/inventory/bad/ is a small variant of a
 * valid base in ../good/ and carries its expected issues in its header, one per line:
 *
 *   # expect: LINE:COL PATH | MESSAGE-SUBSTRING      (PATH "-" for none)
 *
 * The loader must report exactly those issues, in that order (sorted by position), nothing more.
 */

const dir = 'test/fixtures/inventory/bad'
const files = readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort()

interface Expect {
  line: number
  column: number
  path: string
  message: string
}

function expectations(text: string): Expect[] {
  return [...text.matchAll(/^# expect: (\d+):(\d+) (\S+) \| (.+)$/gm)].map((m) => ({
    line: Number(m[1]),
    column: Number(m[2]),
    path: m[3] === '-' ? '' : m[3]!,
    message: m[4]!,
  }))
}

describe('bad inventory corpus', () => {
  it('has at least 45 fixtures, each with at least one expected issue', () => {
    expect(files.length).toBeGreaterThanOrEqual(45)
    for (const f of files) expect(expectations(readFileSync(`${dir}/${f}`, 'utf8')), f).not.toEqual([])
  })

  it('covers every area the inventory rules name', () => {
    for (const prefix of ['yaml-', 'type-', 'missing-', 'unknown-', 'pair-', 'name-', 'priority-', 'vrid-', 'iface-', 'device-', 'ip-', 'ipv6-', 'vip-', 'port-', 'enum-', 'lb-', 'pbr-', 'inject-', 'multi-']) {
      expect(files.some((f) => f.startsWith(prefix)), prefix).toBe(true)
    }
  })

  it.each(files)('%s', (f) => {
    const text = readFileSync(`${dir}/${f}`, 'utf8')
    const want = expectations(text)
    const got = parseInventory(text, f)
    expect(got.model).toBeNull()
    const actual = got.issues.map((i) => ({ line: i.line, column: i.column, path: i.path, message: i.message, file: i.file }))
    // Compare position and path exactly, the message by substring, with readable diffs.
    expect(actual.map((i) => `${i.line}:${i.column} ${i.path || '-'}`)).toEqual(want.map((e) => `${e.line}:${e.column} ${e.path || '-'}`))
    want.forEach((e, k) => expect(actual[k]!.message).toContain(e.message))
    for (const i of actual) {
      expect(i.file).toBe(f)
      // one line per issue: a newline in a message would break file:line:col: output
      expect(i.message).not.toMatch(/[\n\r]/)
    }
  })
})
