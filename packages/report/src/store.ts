/**
 * Past drills: stateDir()/reports/<id>.json (the result) and <id>.html (the report), plus
 * index.jsonl, one summary line per report, so listing thousands of drills reads one small
 * file instead of every result. The index is only a cache: when it disagrees with the files
 * (written by another version, a file deleted by hand) it is rebuilt from them.
 */
import { appendFile, mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { HafwError, stateDir } from '@hafw/core'
import type { DrillResult } from '@hafw/drill'
import { renderHtml } from './html.js'

export interface ReportSummary {
  id: string
  started_at: string
  pair: string
  site: string
  kind: string
  mode: string
  verdict: 'pass' | 'fail'
  gap_ms: number | null
  failover_ms: number | null
  flows: { total: number; kept: number; reset: number }
  failback: boolean
}

export const reportsDir = (): string => join(stateDir(), 'reports')

const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/
const INDEX = 'index.jsonl'

function checkId(id: string): void {
  if (!ID.test(id) || id.endsWith('.json') || id.endsWith('.html')) {
    throw new HafwError(`invalid report id "${id}": letters, digits, ".", "_" and "-" only, at most 128`)
  }
}

export function summarize(r: DrillResult): ReportSummary {
  return {
    id: r.id,
    started_at: r.started_at,
    pair: r.pair,
    site: r.site,
    kind: r.kind,
    mode: r.mode,
    verdict: r.verdict,
    gap_ms: r.gap_ms,
    failover_ms: r.failover_ms,
    flows: { total: r.flows.total, kept: r.flows.kept, reset: r.flows.reset },
    failback: !!r.failback,
  }
}

/** Readers see the whole file or the previous one, never half a report. */
let seq = 0
async function writeAtomic(file: string, data: string): Promise<void> {
  const tmp = `${file}.${process.pid}.${++seq}.tmp`
  await writeFile(tmp, data, { mode: 0o640 })
  await rename(tmp, file)
}

/** The parts of a stored result the renderers and the index rely on; names the file when wrong. */
function checkResult(x: unknown, file: string): DrillResult {
  const r = x as Partial<DrillResult> | null
  const bad = (field: string, want: string) => new HafwError(`${file}: ${field}: expected ${want}; not a drill result`)
  if (!r || typeof r !== 'object' || Array.isArray(r)) throw bad('(document)', 'an object')
  for (const k of ['id', 'pair', 'mode', 'started_at'] as const) if (typeof r[k] !== 'string') throw bad(k, 'a string')
  if (r.verdict !== 'pass' && r.verdict !== 'fail') throw bad('verdict', '"pass" or "fail"')
  if (!r.flows || typeof r.flows !== 'object') throw bad('flows', 'an object')
  if (!r.failover || typeof r.failover !== 'object') throw bad('failover', 'an object')
  if (!Array.isArray(r.failover.timeline)) throw bad('failover.timeline', 'a list')
  if (!Array.isArray(r.failover.per_flow)) throw bad('failover.per_flow', 'a list')
  if (r.failback != null && (typeof r.failback !== 'object' || !Array.isArray(r.failback.timeline) || !Array.isArray(r.failback.per_flow))) {
    throw bad('failback', 'null or a phase with timeline and per_flow lists')
  }
  return r as DrillResult
}

async function readResult(file: string): Promise<DrillResult> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (e) {
    throw new HafwError(`${file}: ${(e as Error).message}`, { cause: e })
  }
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (e) {
    throw new HafwError(`${file}: not valid JSON: ${(e as Error).message}`, { cause: e })
  }
  return checkResult(doc, file)
}

/** Store a drill's result and its HTML report; returns where they are. Same id: replaced. */
export async function saveReport(result: DrillResult): Promise<{ id: string; json: string; html: string }> {
  checkId(result.id)
  checkResult(result, `drill result ${result.id}`)
  const dir = reportsDir()
  await mkdir(dir, { recursive: true, mode: 0o750 })
  const json = join(dir, `${result.id}.json`)
  const html = join(dir, `${result.id}.html`)
  await writeAtomic(html, renderHtml(result))
  await writeAtomic(json, JSON.stringify(result, null, 2) + '\n')
  // One short line per append: concurrent savers (workers) do not interleave within a line.
  await appendFile(join(dir, INDEX), JSON.stringify(summarize(result)) + '\n')
  return { id: result.id, json, html }
}

async function storedIds(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).filter((f) => f.endsWith('.json') && ID.test(f.slice(0, -5))).map((f) => f.slice(0, -5))
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw new HafwError(`${dir}: ${(e as Error).message}`, { cause: e })
  }
}

async function readIndex(dir: string): Promise<Map<string, ReportSummary>> {
  const map = new Map<string, ReportSummary>()
  let text = ''
  try {
    text = await readFile(join(dir, INDEX), 'utf8')
  } catch {
    return map
  }
  for (const line of text.split('\n')) {
    if (!line.trim()) continue
    try {
      const s = JSON.parse(line) as ReportSummary
      if (s && typeof s.id === 'string') map.set(s.id, s)
    } catch {
      // a torn or foreign line: the consistency check below rebuilds from the files
    }
  }
  return map
}

export async function listReports(opts: { pair?: string; limit?: number } = {}): Promise<ReportSummary[]> {
  const dir = reportsDir()
  const ids = await storedIds(dir)
  let index = await readIndex(dir)
  const idSet = new Set(ids)
  if (index.size !== ids.length || [...index.keys()].some((id) => !idSet.has(id))) {
    const fresh = new Map<string, ReportSummary>()
    for (const id of ids) {
      const known = index.get(id)
      if (known) fresh.set(id, known)
      else {
        try {
          fresh.set(id, summarize(await readResult(join(dir, `${id}.json`))))
        } catch {
          // not a drill result (a stray file): leave it out of the listing
        }
      }
    }
    index = fresh
    if (ids.length) await writeAtomic(join(dir, INDEX), [...fresh.values()].map((s) => JSON.stringify(s) + '\n').join(''))
  }
  const rows = [...index.values()]
    .filter((s) => !opts.pair || s.pair === opts.pair)
    .sort((a, b) => (a.started_at < b.started_at ? 1 : a.started_at > b.started_at ? -1 : a.id < b.id ? 1 : a.id > b.id ? -1 : 0))
  return opts.limit !== undefined ? rows.slice(0, opts.limit) : rows
}

/** One stored result by id, or by a prefix that names exactly one. */
export async function loadReport(id: string): Promise<DrillResult> {
  const dir = reportsDir()
  if (!ID.test(id)) throw new HafwError(`invalid report id "${id}"`)
  const ids = await storedIds(dir)
  if (ids.includes(id)) return readResult(join(dir, `${id}.json`))
  const matches = ids.filter((x) => x.startsWith(id))
  if (matches.length === 1) return readResult(join(dir, `${matches[0]}.json`))
  if (matches.length > 1) throw new HafwError(`report id "${id}" is ambiguous: ${matches.slice(0, 5).join(', ')}${matches.length > 5 ? ', ...' : ''}`)
  throw new HafwError(`no drill report "${id}" in ${dir} (hafw reports list shows them)`)
}
