import { readFile } from 'node:fs/promises'
import {
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  parseDocument,
  visit,
  type Document,
  type Node as YamlNode,
  type Pair as YamlPair,
  type YAMLError,
} from 'yaml'
import type * as z from 'zod'
import { InvalidInputError, type SourceIssue } from '@hafw/core'
import { HostSchema, InterfaceAddress, InstanceSchema, InventorySchema, NodeAddress, PairSchema, type RawHost, type RawInventory, type RawPair } from './schema.js'
import { globalRules, hostRules, looseView, pairRules, type Path, type RuleIssue } from './rules.js'
import { Name } from './safe.js'
import { buildModel, type Model } from './model.js'
import { shown } from './safe.js'

/** pairs[0].nodes[1].priority; a key that is not a plain word is quoted: sysctls["net.ipv4.ip_forward"]. */
export function formatPath(path: readonly PropertyKey[]): string {
  let s = ''
  for (const p of path) {
    if (typeof p === 'number') s += `[${p}]`
    else if (!/^[A-Za-z_][A-Za-z0-9_-]*$/.test(String(p))) s += `[${JSON.stringify(String(p))}]`
    else s += s ? `.${String(p)}` : String(p)
  }
  return s
}

/** Find the YAML node for a path; fall back to the deepest ancestor that exists. */
function locate(doc: Document, path: readonly PropertyKey[], key = false): number {
  let node: unknown = doc.contents
  let offset = (doc.contents as YamlNode | null)?.range?.[0] ?? 0
  for (let i = 0; i < path.length; i++) {
    const seg = path[i]
    if (isMap(node)) {
      const pair = node.items.find((it: YamlPair) => isScalar(it.key) && String(it.key.value) === String(seg))
      if (!pair) break
      // an unknown key, or the last segment with key=true, points at the key itself
      if (key && i === path.length - 1) return (pair.key as YamlNode).range?.[0] ?? offset
      node = pair.value ?? pair.key
      offset = (pair.value as YamlNode | null)?.range?.[0] ?? (pair.key as YamlNode).range?.[0] ?? offset
    } else if (isSeq(node) && typeof seg === 'number') {
      const item = node.items[seg] as YamlNode | undefined
      if (!item) break
      node = item
      offset = item.range?.[0] ?? offset
    } else break
  }
  return offset
}

function issueAt(file: string, doc: Document, lc: LineCounter, path: readonly PropertyKey[], message: string, key = false): SourceIssue {
  const { line, col } = lc.linePos(locate(doc, path, key))
  return { file, line, column: col, path: formatPath(path), message }
}

function has(data: unknown, path: readonly PropertyKey[]): boolean {
  let cur: unknown = data
  for (const seg of path) {
    if (cur === null || typeof cur !== 'object' || !(String(seg) in (cur as object))) return false
    cur = (cur as Record<string, unknown>)[String(seg)]
  }
  return cur !== undefined
}

/** What a value is, for "found ..." in messages. */
function kind(v: unknown): string {
  if (v === null) return 'null (an empty value)'
  if (Array.isArray(v)) return 'a list'
  if (typeof v === 'object') return 'a mapping'
  if (typeof v === 'string') return `the string ${shown(v)}`
  return String(v)
}

const TYPE_NAMES: Record<string, string> = {
  array: 'a list',
  object: 'a mapping',
  record: 'a mapping',
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
}

/** Messages for zod's generic issues (schema-level messages take precedence over these). */
const errorMap = (iss: { code?: string; expected?: string; origin?: string; minimum?: unknown; maximum?: unknown; values?: unknown[] }): string | undefined => {
  switch (iss.code) {
    case 'invalid_type':
      return `expected ${TYPE_NAMES[iss.expected ?? ''] ?? iss.expected}`
    case 'too_small':
      return iss.origin === 'array' ? `expected at least ${String(iss.minimum)} item${iss.minimum === 1 ? '' : 's'}` : undefined
    case 'too_big':
      return iss.origin === 'array' ? `expected at most ${String(iss.maximum)} item${iss.maximum === 1 ? '' : 's'}` : undefined
    case 'invalid_value':
      return `expected ${(iss.values ?? []).map((v) => shown(v)).join(' or ')}`
    default:
      return undefined
  }
}

/** Object schema fields at a data path, to suggest the right name for an unknown field. */
function fieldsAt(schema: z.ZodType, path: readonly PropertyKey[]): string[] {
  let s: unknown = schema
  const def = (x: unknown) => (x as { _zod: { def: Record<string, unknown> } })._zod.def
  const unwrap = () => {
    while (def(s).type === 'optional' || def(s).type === 'default' || def(s).type === 'nullable') s = def(s).innerType
  }
  for (const seg of path) {
    unwrap()
    const d = def(s)
    if (d.type === 'object') s = (d.shape as Record<string, unknown>)[String(seg)]
    else if (d.type === 'array') s = d.element
    else if (d.type === 'record') s = d.valueType
    else return []
    if (!s) return []
  }
  unwrap()
  return def(s).type === 'object' ? Object.keys(def(s).shape as object) : []
}

/** Edit distance counting a swap of two neighbours as one edit (typos like "weigth"). */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)))
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++) {
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1))
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1)
    }
  return d[a.length]![b.length]!
}

function unknownField(k: string, known: string[]): string {
  if (k === '<<') return 'YAML merge keys ("<<") are not supported; write the fields out, or put shared values in defaults'
  const near = known.filter((f) => distance(f, k) <= Math.max(1, Math.floor(f.length / 4)))
  if (near.length) return `unknown field ${shown(k)}; did you mean ${near.map((f) => `"${f}"`).join(' or ')}?`
  return known.length ? `unknown field ${shown(k)}; expected one of ${known.join(', ')}` : `unknown field ${shown(k)}`
}

/** zod issues -> located issues, each saying what was expected and, where useful, what was found. */
function zodIssues(file: string, doc: Document, lc: LineCounter, err: z.ZodError, data: unknown): SourceIssue[] {
  const out: SourceIssue[] = []
  for (const i of err.issues) {
    const path = i.path as Path
    const input = (i as { input?: unknown }).input
    if (i.code === 'unrecognized_keys') {
      const known = fieldsAt(InventorySchema, path)
      for (const k of i.keys) out.push(issueAt(file, doc, lc, [...path, k], unknownField(k, known), true))
    } else if (input === undefined && !has(data, path)) {
      const field = path[path.length - 1]
      const what = typeof field === 'string' ? `missing required field "${field}"` : 'missing required value'
      out.push(issueAt(file, doc, lc, path, i.message.startsWith('expected') ? `${what} (${i.message})` : what))
    } else if (i.code === 'invalid_key') {
      // a bad key in a map (e.g. a logical interface name): point at the key
      const msg = i.issues[0]?.message ?? i.message
      out.push(issueAt(file, doc, lc, path, /\bfound\b/.test(msg) ? msg : `${msg}, found ${shown(path[path.length - 1])}`, true))
    } else if (i.code === 'custom' || /\bfound\b/.test(i.message)) {
      out.push(issueAt(file, doc, lc, path, i.message))
    } else {
      const found =
        i.code === 'invalid_type' ? kind(input)
        : Array.isArray(input) ? `${input.length}`
        : input !== null && typeof input === 'object' ? kind(input)
        : shown(input)
      out.push(issueAt(file, doc, lc, path, `${i.message}, found ${found}`))
    }
  }
  return out
}

/** The text of a duplicated key and the line of its first occurrence. */
function duplicateKey(doc: Document, lc: LineCounter, e: YAMLError): string {
  let msg = 'duplicate key'
  visit(doc, {
    Map(_, map) {
      const dup = map.items.find((p) => (p.key as YamlNode | null)?.range?.[0] === e.pos[0])
      if (!dup || !isScalar(dup.key)) return undefined
      const first = map.items.find((p) => p !== dup && isScalar(p.key) && p.key.value === (dup.key as { value: unknown }).value)
      const line = first ? lc.linePos((first.key as YamlNode).range?.[0] ?? 0).line : undefined
      msg = `duplicate key ${shown(dup.key.value)}${line ? ` (first defined on line ${line})` : ''}`
      return visit.BREAK
    },
  })
  return msg
}

/** A syntax error's position and message; an unclosed quote points where the quote opened. */
function syntaxError(doc: Document, e: YAMLError): [number, string] {
  const msg = e.code === 'MULTIPLE_DOCS' ? 'an inventory is one YAML document; found a second one after "---"' : e.message.split('\n')[0]!
  let at = e.pos[0]
  if (e.code === 'MISSING_CHAR' && /quote/.test(msg)) {
    visit(doc, {
      Scalar(_, s) {
        if ((s.type === 'QUOTE_DOUBLE' || s.type === 'QUOTE_SINGLE') && s.range && s.range[0] < at && s.range[1] >= e.pos[0]) at = s.range[0]
      },
    })
    if (at !== e.pos[0]) return [at, `${msg.replace(/\s*$/, '')}: this string never ends`]
  }
  return [at, msg]
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
  const yamlIssue = (pos: number, message: string) => {
    const { line, col } = lc.linePos(pos)
    issues.push({ file, line, column: col, path: '', message: `YAML: ${message}` })
  }
  // Every duplicate key, but only the first syntax error: the ones after it are mostly its echoes.
  const syntax = doc.errors.find((e) => e.code !== 'DUPLICATE_KEY')
  for (const e of doc.errors) {
    if (e.code === 'DUPLICATE_KEY') yamlIssue(e.pos[0], duplicateKey(doc, lc, e))
    else if (e === syntax) yamlIssue(...syntaxError(doc, e))
  }
  // Unknown tags (e.g. !!python/object) are warnings to the yaml package; they are errors here.
  for (const w of doc.warnings) {
    const tag = /^Unresolved tag: (?:tag:yaml\.org,2002:)?(.*)$/.exec(w.message.split('\n')[0]!)
    yamlIssue(w.pos[0], tag ? `tag !!${tag[1]} is not allowed; an inventory holds plain YAML values only` : w.message.split('\n')[0]!)
  }
  visit(doc, {
    Alias(_, a) {
      if (!a.resolve(doc)) yamlIssue(a.range?.[0] ?? 0, `alias *${a.source} refers to no anchor defined before it`)
    },
  })
  // A duplicate key leaves a well-formed document (the last value wins): keep validating so the
  // operator sees every problem at once. Any other YAML problem (a syntax error, a tag, a dangling
  // alias: issues beyond the duplicate keys) makes the structure a guess: stop.
  if (syntax || issues.length > doc.errors.length) return { model: null, issues: sortIssues(issues) }

  let data: unknown
  try {
    // Anchors and aliases are resolved; a small alias budget refuses "billion laughs" documents.
    data = doc.toJS({ maxAliasCount: 100 })
  } catch (e) {
    yamlIssue(0, (e as Error).message)
    return { model: null, issues: sortIssues(issues) }
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    issues.push(issueAt(file, doc, lc, [], `expected a mapping with version, site, pairs and hosts, found ${data === null ? 'an empty document' : kind(data)}`))
    return { model: null, issues: sortIssues(issues) }
  }
  const parsed = InventorySchema.safeParse(data, { error: errorMap, reportInput: true })
  if (!parsed.success) issues.push(...zodIssues(file, doc, lc, parsed.error, data))

  // Cross-field rules run on every pair and host that is well-formed on its own, so one typo
  // does not hide the other problems.
  const rawObj = data as Partial<RawInventory> & { pairs?: unknown; hosts?: unknown }
  const each = <T>(list: unknown, schema: z.ZodType<T>): (T | null)[] =>
    Array.isArray(list) ? list.map((x) => { const r = schema.safeParse(x); return r.success ? r.data : null }) : []
  const pairs = each<RawPair>(rawObj.pairs, PairSchema)
  const hosts = each<RawHost>(rawObj.hosts, HostSchema)
  const rules: RuleIssue[] = []
  pairs.forEach((p, k) => p && rules.push(...pairRules(p, ['pairs', k], rawObj.defaults?.vrrp)))
  hosts.forEach((h, k) => h && rules.push(...hostRules(h, ['hosts', k])))
  // Names, addresses and VRIDs are compared across the inventory even where a pair or host has
  // other problems: only the fields that are valid on their own take part.
  const ok = (schema: z.ZodType) => (v: unknown) => schema.safeParse(v).success
  const fields = { name: ok(Name), address: ok(NodeAddress), cidr: ok(InterfaceAddress), vrid: ok(InstanceSchema.shape.vrid) }
  const loose = <T>(list: unknown, full: (T | null)[]) => (Array.isArray(list) ? list.map((x, k) => full[k] ?? looseView(x, fields)) : [])
  rules.push(...globalRules(rawObj, loose(rawObj.pairs, pairs), loose(rawObj.hosts, hosts)))
  if (!pairs.length && !hosts.length && parsed.success) {
    rules.push({ path: [], message: 'the inventory declares no pairs and no hosts; expected at least one of them' })
  }
  for (const r of rules) issues.push(issueAt(file, doc, lc, r.path, r.message))

  const unique = sortIssues(issues)
  if (unique.length || !parsed.success) return { model: null, issues: unique }
  return { model: buildModel(parsed.data, file), issues: [] }
}

/** By position, duplicates removed. */
function sortIssues(issues: SourceIssue[]): SourceIssue[] {
  const sorted = [...issues].sort((a, b) => a.line - b.line || a.column - b.column || a.path.localeCompare(b.path))
  return sorted.filter((i, k) => k === 0 || JSON.stringify(i) !== JSON.stringify(sorted[k - 1]))
}

/** Read and validate a file; never throws for bad input (a missing file is an issue too). */
export async function readInventory(file: string): Promise<LoadResult> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory, expected an inventory file' : `cannot read: ${(e as Error).message}`
    return { model: null, issues: [{ file, line: 0, column: 0, path: '', message: why }] }
  }
  if (text.includes('\0')) return { model: null, issues: [{ file, line: 0, column: 0, path: '', message: 'is not a text file (it contains NUL bytes); expected a YAML inventory' }] }
  return parseInventory(text, file)
}

/** Read, validate and build; throws InvalidInputError listing every problem. */
export async function loadInventory(file: string): Promise<Model> {
  const r = await readInventory(file)
  if (r.model) return r.model
  if (r.issues.length === 1 && r.issues[0]!.line === 0) throw new InvalidInputError(r.issues, `cannot load ${file}`)
  throw new InvalidInputError(r.issues, `${r.issues.length} problem${r.issues.length === 1 ? '' : 's'} in ${file}`)
}
