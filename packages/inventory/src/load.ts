import { readFile } from 'node:fs/promises'
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node as YamlNode, type Pair as YamlPair } from 'yaml'
import type { z } from 'zod'
import { InvalidInputError, type SourceIssue } from '@hafw/core'
import { HostSchema, InventorySchema, PairSchema, type RawHost, type RawInventory, type RawPair } from './schema.js'
import { globalRules, hostRules, pairRules, type Path, type RuleIssue } from './rules.js'
import { buildModel, type Model } from './model.js'

export function formatPath(path: readonly PropertyKey[]): string {
  let s = ''
  for (const p of path) s += typeof p === 'number' ? `[${p}]` : s ? `.${String(p)}` : String(p)
  return s
}

/** Find the YAML node for a path; fall back to the deepest ancestor that exists. */
function locate(doc: Document, path: readonly PropertyKey[], key = false): { offset: number; path: readonly PropertyKey[] } {
  let node: unknown = doc.contents
  let offset = 0
  for (let i = 0; i < path.length; i++) {
    const seg = path[i]
    if (isMap(node)) {
      const pair = node.items.find((it: YamlPair) => isScalar(it.key) && String(it.key.value) === String(seg))
      if (!pair) break
      // an unknown key, or the last segment with key=true, points at the key itself
      if (key && i === path.length - 1) {
        offset = (pair.key as YamlNode).range?.[0] ?? offset
        return { offset, path }
      }
      node = pair.value ?? pair.key
      offset = (pair.value as YamlNode | null)?.range?.[0] ?? (pair.key as YamlNode).range?.[0] ?? offset
    } else if (isSeq(node) && typeof seg === 'number') {
      const item = node.items[seg] as YamlNode | undefined
      if (!item) break
      node = item
      offset = item.range?.[0] ?? offset
    } else break
  }
  if (node && (node as YamlNode).range && path.length === 0) offset = (node as YamlNode).range![0]
  return { offset, path }
}

function issueAt(file: string, doc: Document, lc: LineCounter, path: readonly PropertyKey[], message: string, key = false): SourceIssue {
  const { offset } = locate(doc, path, key)
  const { line, col } = lc.linePos(offset)
  return { file, line, column: col, path: formatPath(path), message }
}

/** zod issues -> located issues; unknown keys point at each key. */
function has(data: unknown, path: readonly PropertyKey[]): boolean {
  let cur: unknown = data
  for (const seg of path) {
    if (cur === null || typeof cur !== 'object' || !(String(seg) in (cur as object))) return false
    cur = (cur as Record<string, unknown>)[String(seg)]
  }
  return cur !== undefined
}

function zodIssues(file: string, doc: Document, lc: LineCounter, err: z.ZodError, data: unknown): SourceIssue[] {
  const prefix: Path = []
  const out: SourceIssue[] = []
  for (const i of err.issues) {
    const path = [...prefix, ...(i.path as Path)]
    if (i.code === 'unrecognized_keys') {
      for (const k of i.keys) out.push(issueAt(file, doc, lc, [...path, k], `unknown field "${k}"`, true))
    } else if (i.code === 'invalid_type' && !has(data, path)) {
      out.push(issueAt(file, doc, lc, path, `missing required field${i.message.startsWith('expected') ? ` (${i.message})` : ''}`))
    } else if (i.code === 'invalid_union' && 'errors' in i && Array.isArray(i.errors)) {
      out.push(issueAt(file, doc, lc, path, i.message))
    } else {
      out.push(issueAt(file, doc, lc, path, i.message))
    }
  }
  return out
}

export interface LoadResult {
  model: Model | null
  issues: SourceIssue[]
}

/** Parse and validate inventory text; never throws for bad input, returns every issue found. */
export function parseInventory(text: string, file: string): LoadResult {
  const lc = new LineCounter()
  const doc = parseDocument(text, { lineCounter: lc, uniqueKeys: true, prettyErrors: false, strict: true })
  const issues: SourceIssue[] = []
  for (const e of doc.errors) {
    const { line, col } = lc.linePos(e.pos[0])
    const msg = e.code === 'DUPLICATE_KEY' ? `duplicate key: ${e.message.replace(/\s+at line.*$/s, '')}` : e.message.split('\n')[0]!
    issues.push({ file, line, column: col, path: '', message: `YAML: ${msg}` })
  }
  if (issues.length) return { model: null, issues }
  for (const w of doc.warnings) {
    const { line, col } = lc.linePos(w.pos[0])
    issues.push({ file, line, column: col, path: '', message: `YAML: ${w.message.split('\n')[0]}` })
  }
  if (issues.length) return { model: null, issues }

  // Anchors and aliases are resolved; YAML tags beyond the core schema are refused by strict mode.
  const data: unknown = doc.toJS({ maxAliasCount: 100 })
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    return { model: null, issues: [issueAt(file, doc, lc, [], 'expected a mapping with version, site, pairs and hosts')] }
  }
  const parsed = InventorySchema.safeParse(data)
  if (!parsed.success) issues.push(...zodIssues(file, doc, lc, parsed.error, data))

  // Cross-field rules run on every pair and host that is well-formed on its own, so one typo
  // does not hide the other problems.
  const rawObj = data as Partial<RawInventory> & { pairs?: unknown; hosts?: unknown }
  const pairs: (RawPair | null)[] = Array.isArray(rawObj.pairs) ? rawObj.pairs.map((p) => { const r = PairSchema.safeParse(p); return r.success ? r.data : null }) : []
  const hosts: (RawHost | null)[] = Array.isArray(rawObj.hosts) ? rawObj.hosts.map((h) => { const r = HostSchema.safeParse(h); return r.success ? r.data : null }) : []
  const rules: RuleIssue[] = []
  pairs.forEach((p, k) => p && rules.push(...pairRules(p, ['pairs', k])))
  hosts.forEach((h, k) => h && rules.push(...hostRules(h, ['hosts', k])))
  rules.push(...globalRules(rawObj, pairs, hosts))
  if (!rawObj.pairs?.length && !(rawObj.hosts as unknown[] | undefined)?.length && parsed.success) {
    rules.push({ path: [], message: 'the inventory declares no pairs and no hosts' })
  }
  for (const r of rules) issues.push(issueAt(file, doc, lc, r.path, r.message))

  issues.sort((a, b) => a.line - b.line || a.column - b.column)
  const unique = issues.filter((i, k) => k === 0 || JSON.stringify(i) !== JSON.stringify(issues[k - 1]))
  if (unique.length || !parsed.success) return { model: null, issues: unique }
  return { model: buildModel(parsed.data, file), issues: [] }
}

/** Read, validate and build; throws InvalidInputError listing every problem. */
export async function loadInventory(file: string): Promise<Model> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    throw new InvalidInputError([{ file, line: 0, column: 0, path: '', message: code === 'ENOENT' ? 'no such file' : `cannot read: ${(e as Error).message}` }], `cannot load ${file}`)
  }
  const r = parseInventory(text, file)
  if (!r.model) throw new InvalidInputError(r.issues, `${r.issues.length} problem${r.issues.length === 1 ? '' : 's'} in ${file}`)
  return r.model
}
