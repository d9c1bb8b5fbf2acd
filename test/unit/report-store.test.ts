import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync, appendFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { DrillResult } from '@hafw/drill'
import { listReports, loadReport, renderHtml, renderTable, reportsDir, saveReport } from '@hafw/report'

const load = (name: string) => JSON.parse(readFileSync(`test/fixtures/drill/${name}.json`, 'utf8')) as DrillResult
const PASS = load('edge1-graceful-pass')
const FAIL = load('edge1-crash-sync-blocked')

let dir: string
const saved = process.env.HAFW_STATE_DIR
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hafw-report-'))
  process.env.HAFW_STATE_DIR = dir
})
afterEach(() => {
  if (saved === undefined) delete process.env.HAFW_STATE_DIR
  else process.env.HAFW_STATE_DIR = saved
  rmSync(dir, { recursive: true, force: true })
})

/** A copy of a fixture as another drill: other id, pair and start time. */
function variant(r: DrillResult, i: number, pair = r.pair): DrillResult {
  const x = structuredClone(r)
  x.id = `${r.id}-${i}`
  x.pair = pair
  x.started_at = new Date(Date.parse(r.started_at) + i * 60_000).toISOString()
  return x
}

describe('report store', () => {
  it('writes the result and its HTML under stateDir()/reports and reads it back unchanged', async () => {
    const w = await saveReport(PASS)
    expect(w.json).toBe(join(dir, 'reports', `${PASS.id}.json`))
    expect(w.html).toBe(join(dir, 'reports', `${PASS.id}.html`))
    expect(reportsDir()).toBe(join(dir, 'reports'))
    expect(readFileSync(w.html, 'utf8')).toBe(renderHtml(PASS))
    expect(await loadReport(PASS.id)).toEqual(PASS)
    // no temp file left behind
    expect(readdirSync(join(dir, 'reports')).sort()).toEqual([`${PASS.id}.html`, `${PASS.id}.json`, 'index.jsonl'])
  })

  it('lists newest first, filters by pair, limits, and keeps one row per id', async () => {
    await saveReport(PASS)
    await saveReport(FAIL)
    await saveReport(variant(PASS, 1, 'edge2'))
    await saveReport(PASS) // saved again: replaced, not duplicated
    const all = await listReports()
    expect(all.map((r) => r.id)).toEqual([FAIL.id, `${PASS.id}-1`, PASS.id])
    const f = all[0]!
    expect(f).toEqual({
      id: FAIL.id, started_at: FAIL.started_at, pair: 'edge1', site: 'lab', kind: 'firewall', mode: 'crash', verdict: 'fail',
      gap_ms: FAIL.gap_ms, failover_ms: FAIL.failover_ms, flows: FAIL.flows, failback: false,
    })
    expect(all[2]!.failback).toBe(true)
    expect((await listReports({ pair: 'edge2' })).map((r) => r.id)).toEqual([`${PASS.id}-1`])
    expect(await listReports({ limit: 1 })).toHaveLength(1)
    expect(await listReports({ pair: 'nope' })).toEqual([])
  })

  it('lists nothing (and creates nothing) before the first drill', async () => {
    expect(await listReports()).toEqual([])
    expect(existsSync(join(dir, 'reports'))).toBe(false)
  })

  it('survives concurrent saves', async () => {
    await Promise.all(Array.from({ length: 40 }, (_, i) => saveReport(variant(PASS, i))))
    const all = await listReports()
    expect(all).toHaveLength(40)
    expect(readFileSync(join(dir, 'reports', 'index.jsonl'), 'utf8').trim().split('\n')).toHaveLength(40)
  })

  it('rebuilds its index when files were removed or added by hand, or the index is damaged', async () => {
    await saveReport(PASS)
    await saveReport(FAIL)
    const rd = join(dir, 'reports')
    unlinkSync(join(rd, `${FAIL.id}.json`))
    expect((await listReports()).map((r) => r.id)).toEqual([PASS.id])
    const other = variant(FAIL, 3, 'lb1')
    writeFileSync(join(rd, `${other.id}.json`), JSON.stringify(other))
    appendFileSync(join(rd, 'index.jsonl'), '{"torn\n')
    expect((await listReports()).map((r) => r.id)).toEqual([other.id, PASS.id])
    rmSync(join(rd, 'index.jsonl'))
    expect((await listReports()).map((r) => r.id)).toEqual([other.id, PASS.id])
    expect(readFileSync(join(rd, 'index.jsonl'), 'utf8').trim().split('\n')).toHaveLength(2)
  })

  it('finds a report by a unique prefix and says clearly when it cannot', async () => {
    await saveReport(PASS)
    await saveReport(FAIL)
    expect((await loadReport('20250603T03')).id).toBe(FAIL.id)
    await expect(loadReport('2025')).rejects.toThrow(/report id "2025" is ambiguous: 20250603T020000Z-edge1-graceful, 20250603T031000Z-edge1-crash/)
    await expect(loadReport('nope')).rejects.toThrow(`no drill report "nope" in ${join(dir, 'reports')}`)
    await expect(loadReport('../etc/passwd')).rejects.toThrow('invalid report id "../etc/passwd"')
  })

  it('refuses ids that are not file names, and results that are not results', async () => {
    await expect(saveReport({ ...PASS, id: '../../x' })).rejects.toThrow('invalid report id "../../x"')
    await expect(saveReport({ ...PASS, id: '' })).rejects.toThrow('invalid report id ""')
    await expect(saveReport({ ...PASS, verdict: 'maybe' as 'pass' })).rejects.toThrow('verdict: expected "pass" or "fail"')
    expect(existsSync(join(dir, 'x.json'))).toBe(false)
    expect(existsSync(join(dir, 'reports', '.json'))).toBe(false)
  })

  it('names the file when a stored report is damaged', async () => {
    const w = await saveReport(PASS)
    writeFileSync(w.json, '{"id": "x",')
    await expect(loadReport(PASS.id)).rejects.toThrow(`${w.json}: not valid JSON`)
    writeFileSync(w.json, JSON.stringify({ ...PASS, failover: { ...PASS.failover, per_flow: 'no' } }))
    await expect(loadReport(PASS.id)).rejects.toThrow(`${w.json}: failover.per_flow: expected a list; not a drill result`)
  })
})

/* The built CLI, as an operator runs it (`npx tsc -b packages/cli` first). */
describe('hafw reports', () => {
  const hafw = (...args: string[]) => {
    const r = spawnSync(process.execPath, ['packages/cli/bin/run.js', ...args], { encoding: 'utf8', env: { ...process.env, HAFW_DEBUG: '', HAFW_STATE_DIR: dir }, timeout: 60_000 })
    return { code: r.status, stdout: r.stdout, stderr: r.stderr }
  }
  beforeEach(async () => {
    if (!existsSync('packages/cli/dist/commands/reports/list.js')) throw new Error('build the CLI first: npx tsc -b packages/cli')
    await saveReport(PASS)
    await saveReport(FAIL)
  })

  it('list prints id, time, pair, mode, verdict, gap and resets; --json the summaries', () => {
    const r = hafw('reports', 'list')
    expect(r.code).toBe(0)
    const lines = r.stdout.trimEnd().split('\n')
    expect(lines[0]).toMatch(/^ID +TIME +PAIR +MODE +VERDICT +GAP +RESET$/)
    expect(lines[1]).toMatch(new RegExp(`^${FAIL.id} +${FAIL.started_at} +edge1 +crash +FAIL +${FAIL.gap_ms}ms +10/20$`))
    expect(lines[2]).toMatch(new RegExp(`^${PASS.id} +${PASS.started_at} +edge1 +graceful\\+failback +PASS +${PASS.gap_ms}ms +0/20$`))
    const j = hafw('reports', 'list', '--pair', 'edge1', '--json')
    expect(j.code).toBe(0)
    expect((JSON.parse(j.stdout) as { reports: { id: string }[] }).reports.map((x) => x.id)).toEqual([FAIL.id, PASS.id])
    const none = hafw('reports', 'list', '--pair', 'other')
    expect(none.code).toBe(0)
    expect(none.stdout).toBe('')
    expect(none.stderr).toBe('no drill reports for pair other\n')
  })

  it('show prints the table, --html writes the report, --json the result', () => {
    const html = join(dir, 'out.html')
    const r = hafw('reports', 'show', PASS.id, '--html', html)
    expect(r.code).toBe(0)
    expect(r.stdout).toBe(renderTable(PASS)) // not a TTY: no colour
    expect(r.stderr).toBe(`wrote ${html}\n`)
    expect(readFileSync(html, 'utf8')).toBe(renderHtml(PASS))
    const j = hafw('reports', 'show', FAIL.id, '--json')
    expect(j.code).toBe(0)
    expect(JSON.parse(j.stdout)).toEqual(FAIL)
  })

  it('show of an unknown id fails with one clear line', () => {
    const r = hafw('reports', 'show', 'nope')
    expect(r.code).toBe(1)
    expect(r.stdout).toBe('')
    expect(r.stderr).toBe(`error: no drill report "nope" in ${join(dir, 'reports')} (hafw reports list shows them)\n`)
    const h = hafw('reports', 'show', PASS.id, '--html', join(dir, 'no', 'such', 'dir', 'x.html'))
    expect(h.code).toBe(1)
    expect(h.stderr).toMatch(/^error: .*x\.html: ENOENT/)
  })
})
