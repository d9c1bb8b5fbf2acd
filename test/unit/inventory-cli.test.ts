import { beforeAll, describe, expect, it } from 'vitest'
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { parse } from 'yaml'
import { Ajv2020 } from 'ajv/dist/2020.js'
import { formatIssue } from '@hafw/core'
import { inventoryJsonSchema, parseInventory } from '@hafw/inventory'

/* The built CLI, run as an operator runs it (`npx tsc -b packages/cli` first). */

const BIN = 'packages/cli/bin/run.js'
function hafw(...args: string[]) {
  // NODE_ENV stays "test" (vitest's): the CLI must run its compiled dist/ regardless
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, HAFW_DEBUG: '' }, timeout: 60_000 })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}
const noStack = (s: string) => expect(s).not.toMatch(/^\s+at .+[(:]\d+/m)

const BAD = 'test/fixtures/inventory/bad/multi-independent.yaml'
const INJECT = 'test/fixtures/inventory/bad/inject-iface-newline.yaml'
const expectedIssues = (f: string) => parseInventory(readFileSync(f, 'utf8'), f).issues

beforeAll(() => {
  if (!existsSync('packages/cli/dist/commands/inventory/validate.js')) throw new Error('build the CLI first: npx tsc -b packages/cli')
})

describe('hafw inventory validate', () => {
  it('exits 0 for valid files and says so on stdout', () => {
    const r = hafw('inventory', 'validate', 'inventory/lab.yaml', 'inventory/reference.yaml')
    expect(r.code).toBe(0)
    expect(r.stdout).toBe('inventory/lab.yaml: valid\ninventory/reference.yaml: valid\n')
    expect(r.stderr).toBe('')
  })

  it('exits 1 with every issue on stderr as file:line:col: path: message', () => {
    const r = hafw('inventory', 'validate', 'inventory/lab.yaml', BAD)
    expect(r.code).toBe(1)
    expect(r.stdout).toBe('inventory/lab.yaml: valid\n')
    const want = expectedIssues(BAD)
    expect(want).toHaveLength(6)
    const lines = r.stderr.trimEnd().split('\n')
    expect(lines).toEqual([...want.map(formatIssue), '6 problems in 1 of 2 files'])
    expect(lines[0]).toBe(`${BAD}:14:45: defaults.firewall.ownership: expected full or chains, found "some"`)
    noStack(r.stderr)
  })

  it('keeps an injected newline on one line, escaped', () => {
    const r = hafw('inventory', 'validate', INJECT)
    expect(r.code).toBe(1)
    expect(r.stderr.split('\n')[0]).toBe(`${INJECT}:18:20: pairs[0].nodes[0].interfaces.outside: a Linux interface name cannot contain a control character, found "eth0\\n-A INPUT -j ACCEPT"`)
    expect(r.stderr).not.toContain('\n-A INPUT')
  })

  it('--json prints a parseable error list on stdout', () => {
    const r = hafw('inventory', 'validate', BAD, 'inventory/lab.yaml', '--json')
    expect(r.code).toBe(1)
    const out = JSON.parse(r.stdout) as { valid: boolean; files: { file: string; valid: boolean; issues: unknown[] }[] }
    expect(out.valid).toBe(false)
    expect(out.files).toEqual([
      { file: BAD, valid: false, issues: expectedIssues(BAD) },
      { file: 'inventory/lab.yaml', valid: true, issues: [] },
    ])
    noStack(r.stderr)
  })

  it('--json on valid files exits 0', () => {
    const r = hafw('inventory', 'validate', 'inventory/lab.yaml', '--json')
    expect(r.code).toBe(0)
    expect(JSON.parse(r.stdout)).toEqual({ valid: true, files: [{ file: 'inventory/lab.yaml', valid: true, issues: [] }] })
  })

  it('a missing file, a directory or a binary is a clear error, not a stack trace', () => {
    const r = hafw('inventory', 'validate', 'no/such/inventory.yaml', 'test', '/bin/true')
    expect(r.code).toBe(1)
    expect(r.stderr).toBe(
      'no/such/inventory.yaml: no such file\n' +
        'test: is a directory, expected an inventory file\n' +
        '/bin/true: is not a text file (it contains NUL bytes); expected a YAML inventory\n' +
        '3 problems in 3 of 3 files\n',
    )
  })
})

describe('hafw inventory show', () => {
  it('--json prints the model with defaults filled in', () => {
    const r = hafw('inventory', 'show', 'inventory/lab.yaml', '--json')
    expect(r.code).toBe(0)
    const m = JSON.parse(r.stdout)
    const model = parseInventory(readFileSync('inventory/lab.yaml', 'utf8'), 'inventory/lab.yaml').model!
    // the numeric address forms are for code only
    expect(r.stdout).not.toMatch(/ipNum|netNum/)
    expect(m.pairs[0].nodes[0].ssh).toEqual(model.pairs[0]!.nodes[0].ssh)
    expect(m.pairs[0].nodes[0].ssh.known_hosts).toBe('~/.ssh/known_hosts') // built-in default
    expect(m.pairs[0].conntrack_sync).toMatchObject({ interface: 'sync', mode: 'ftfw', hash_size: 32768 })
    expect(m.pairs[1].vrrp.instances[0].track_interfaces).toEqual(['back', 'front'])
    expect(m.pairs[0].nodes[0].interfaces.outside).toEqual({ name: 'outside', device: 'ens3', address: { family: 4, cidr: '192.168.10.11/24', ip: '192.168.10.11', prefix: 24, network: '192.168.10.0', broadcast: '192.168.10.255' } })
  })

  it('prints YAML by default, the same model as --json', () => {
    const y = hafw('inventory', 'show', 'inventory/reference.yaml')
    const j = hafw('inventory', 'show', 'inventory/reference.yaml', '--json')
    expect(y.code).toBe(0)
    expect(parse(y.stdout)).toEqual(JSON.parse(j.stdout))
  })

  it('an invalid inventory exits 1 with every issue, no stack', () => {
    const r = hafw('inventory', 'show', BAD)
    expect(r.code).toBe(1)
    expect(r.stdout).toBe('')
    expect(r.stderr.split('\n')[0]).toBe(`error: 6 problems in ${BAD}:`)
    for (const i of expectedIssues(BAD)) expect(r.stderr).toContain(`  ${formatIssue(i)}\n`)
    noStack(r.stderr)
  })

  it('--json on an invalid inventory gives the issues as JSON', () => {
    const r = hafw('inventory', 'show', BAD, '--json')
    expect(r.code).toBe(1)
    expect(JSON.parse(r.stdout).error.issues).toEqual(expectedIssues(BAD))
  })

  it('a missing file is a clear error', () => {
    const r = hafw('inventory', 'show', 'missing.yaml')
    expect(r.code).toBe(1)
    expect(r.stderr).toBe('error: cannot load missing.yaml:\n  missing.yaml: no such file\n')
  })
})

describe('hafw inventory schema', () => {
  it('prints a JSON Schema that accepts the lab and reference inventories', () => {
    const r = hafw('inventory', 'schema')
    expect(r.code).toBe(0)
    const schema = JSON.parse(r.stdout)
    expect(schema).toEqual(inventoryJsonSchema())
    const validate = new Ajv2020({ strict: true }).compile(schema)
    for (const f of ['inventory/lab.yaml', 'inventory/reference.yaml', 'test/fixtures/inventory/good/dualstack.yaml']) expect(validate(parse(readFileSync(f, 'utf8'))), f).toBe(true)
  })
})

describe('help', () => {
  it('hafw --help lists the inventory commands with examples', () => {
    const r = hafw('--help')
    expect(r.code).toBe(0)
    for (const c of ['validate', 'show', 'schema']) expect(r.stdout).toMatch(new RegExp(`^  inventory ${c} +\\S`, 'm'))
    const examples = r.stdout.slice(r.stdout.indexOf('EXAMPLES'))
    expect(examples).toContain('$ hafw inventory validate inventory/lab.yaml')
    expect(examples).toContain('$ hafw inventory show inventory/lab.yaml')
    expect(examples).toContain('$ hafw inventory schema > hafw.schema.json')
  })

  it('hafw inventory --help lists its commands with examples', () => {
    const r = hafw('inventory', '--help')
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/^COMMANDS\n  inventory schema/m)
    expect(r.stdout).toMatch(/^EXAMPLES\n  \$ hafw inventory schema > hafw.schema.json\n  \$ hafw inventory show inventory\/lab.yaml\n  \$ hafw inventory validate inventory\/lab.yaml$/m)
  })

  it('hafw inventory validate --help documents exit codes and output', () => {
    const r = hafw('inventory', 'validate', '--help')
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('Exit 0 when every file is valid, 1 otherwise')
    expect(r.stdout).toContain('$ hafw inventory validate inventory/*.yaml --json')
  })
})
