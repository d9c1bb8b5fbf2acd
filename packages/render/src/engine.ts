import Handlebars from 'handlebars'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { repoRoot } from '@hafw/core'
import { RenderError } from './errors.js'

/*
 * One isolated Handlebars instance: strict (a missing field throws instead of rendering ""),
 * noEscape (configs are not HTML), and only the helpers registered here. Strict mode in
 * Handlebars 4 does not cover helper arguments ({{#if typo}} is silently false), so views are
 * also wrapped in a proxy that throws on any read of a field the view does not have.
 */

/** Characters no rendered value may carry: a newline would start a new directive. */
const CONTROL = /[\x00-\x1f\x7f]/

function refuseQuote(kind: string, s: unknown, bad: RegExp): string {
  const v = String(s)
  if (bad.test(v)) throw new RenderError(`value ${JSON.stringify(v)} cannot be ${kind}-quoted safely`)
  return v
}

const helpers = {
  /** Single-quoted shell word; refuses values that could leave the quotes. */
  sq: (s: unknown) => `'${refuseQuote('shell', s, /['\x00-\x1f\x7f]/)}'`,
  /** Double-quoted string for keepalived, iptables-restore and nft; no quote, backslash or `$` inside. */
  dq: (s: unknown) => `"${refuseQuote('double', s, /["\\$`\x00-\x1f\x7f]/)}"`,
  /** Join a list: {{join list ", "}} */
  join: (list: unknown, sep: unknown) => {
    if (!Array.isArray(list)) throw new RenderError('join: expected a list')
    return list.map(String).join(typeof sep === 'string' ? sep : ' ')
  },
}

const hb = Handlebars.create()
for (const [name, fn] of Object.entries(helpers)) hb.registerHelper(name, fn)
// Built-ins that could read outside the view or print to the console are not wanted.
hb.unregisterHelper('lookup')
hb.unregisterHelper('log')

const COMPILE: CompileOptions = {
  strict: true,
  noEscape: true,
  knownHelpersOnly: true,
  knownHelpers: { ...Object.fromEntries(Object.keys(helpers).map((k) => [k, true])), lookup: false, log: false },
}

type CompileOptions = Parameters<typeof Handlebars.compile>[1]

/** Refuse control characters anywhere in a view before it reaches a template (second line of defence). */
export function assertPlainView(v: unknown, path = 'view'): void {
  if (typeof v === 'string') {
    if (CONTROL.test(v)) throw new RenderError(`${path} contains a control character (newline?): ${JSON.stringify(v)}; refusing to render`)
  } else if (Array.isArray(v)) v.forEach((x, i) => assertPlainView(x, `${path}[${i}]`))
  else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) assertPlainView(x, `${path}.${k}`)
}

/** A read-only view whose missing fields throw, with the path that was asked for. */
export function strictView<T>(v: T, path = 'view'): T {
  if (v === null || typeof v !== 'object') return v
  return new Proxy(v as object, {
    get(target, prop, receiver) {
      if (typeof prop === 'symbol') return Reflect.get(target, prop, receiver)
      if (!(prop in target)) throw new RenderError(`template reads ${path}.${prop}, which the view does not have`)
      const x = Reflect.get(target, prop, receiver) as unknown
      return x !== null && typeof x === 'object' ? strictView(x, `${path}.${prop}`) : x
    },
    set() {
      throw new RenderError(`template tried to modify ${path}`)
    },
  }) as T
}

export type Template = (view: object) => string

/** Compile template source on the isolated instance. */
export function compileTemplate(source: string, name: string): Template {
  let fn: Handlebars.TemplateDelegate
  try {
    // compile() is lazy and would generate the code again at first use: generate it once, now
    // (syntax errors and unknown helpers surface here), and load it as a build step's
    // precompiled template would be (precompile is typed as the spec; it returns its source)
    const code = hb.precompile(source, COMPILE) as unknown as string
    fn = hb.template(new Function(`return ${code}`)() as ReturnType<typeof hb.precompile>)
  } catch (e) {
    throw new RenderError(`template ${name}: ${(e as Error).message}`)
  }
  return (view: object) => {
    assertPlainView(view)
    try {
      return fn(strictView(view))
    } catch (e) {
      const msg = (e as Error).message.replace(/ in \[object Object\]/, '')
      throw new RenderError(`template ${name}: ${msg}`)
    }
  }
}

const cache = new Map<string, Template>()

/** The repository's templates/ folder, or HAFW_TEMPLATES for a customised copy. */
export function templatesDir(): string {
  return process.env.HAFW_TEMPLATES ?? join(repoRoot(), 'templates')
}

/** Load (once) and render templates/<name>. */
export function renderTemplate(name: string, view: object): string {
  const file = join(templatesDir(), name)
  let t = cache.get(file)
  if (!t) {
    let src: string
    try {
      src = readFileSync(file, 'utf8')
    } catch (e) {
      throw new RenderError(`template ${name}: cannot read ${file}: ${(e as Error).message}`)
    }
    t = compileTemplate(src, name)
    cache.set(file, t)
  }
  return t(view)
}
