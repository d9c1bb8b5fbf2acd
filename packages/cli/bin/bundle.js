// dist/bundle/: the CLI as a few files. Node spent most of a command's start finding, reading
// and compiling ~800 modules one by one (oclif, bullmq, ioredis, zod, yaml, ssh2...;
// bench/cli-start.ts). esbuild joins them: one entry per command (oclif loads only the one it
// runs), code they share in common chunks, and each operation's code in a chunk of its own that
// is loaded when a job of it runs. oclif.manifest.json beside it lists the commands, so oclif
// does not import every command to find them.
//
// `npm run build` writes both; the CLI rewrites them when a package was rebuilt since (a plain
// `tsc -b`), or a package.json or the lockfile changed, so it never runs stale code.
import { createHash } from 'node:crypto'
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const repo = join(root, '..', '..')
const OUT = join(root, 'dist', 'bundle')
const MANIFEST = join(root, 'oclif.manifest.json')
/** The bundle's oclif: bin/run.js starts it, commands extend its Command. */
export const MAIN = join(OUT, 'main.js')

/**
 * What the bundle is made from: each package's build (tsc -b rewrites its .tsbuildinfo whenever
 * it emits), package.json files, the lockfile, this script. A few stats, not one per module.
 */
function fingerprint() {
  const parts = []
  const add = (p) => {
    const s = statSync(p)
    parts.push(`${relative(repo, p)}:${s.size}:${s.mtimeMs}`)
  }
  add(fileURLToPath(import.meta.url))
  add(join(repo, 'package-lock.json'))
  for (const pkg of readdirSync(join(repo, 'packages'))) {
    add(join(repo, 'packages', pkg, 'package.json'))
    add(join(repo, 'packages', pkg, 'dist', '.tsbuildinfo'))
  }
  return createHash('sha1').update(parts.join('\n')).digest('hex')
}

/**
 * Modules keep their own location: import.meta.url, __dirname and __filename are what they were
 * in their own file (templates, assets and package.json files are found from there), and native
 * addons are loaded from where npm built them.
 */
const inPlace = {
  name: 'in-place',
  setup(build) {
    build.onResolve({ filter: /^hafw:main$/ }, () => ({ path: 'main', namespace: 'hafw' }))
    build.onLoad({ filter: /^main$/, namespace: 'hafw' }, () => ({ contents: "export { execute, settings, Plugin } from '@oclif/core'", resolveDir: root }))
    build.onResolve({ filter: /\.node$/ }, (a) => ({ path: join(a.resolveDir, a.path), external: true }))
    build.onLoad({ filter: /\.[cm]?js$/ }, (a) => {
      let src = readFileSync(a.path, 'utf8')
      if (src.includes('import.meta.url')) src = src.replaceAll('import.meta.url', JSON.stringify(pathToFileURL(a.path).href))
      if (/\b__(dirname|filename)\b/.test(src)) src = `var __dirname = ${JSON.stringify(dirname(a.path))}, __filename = ${JSON.stringify(a.path)};\n${src}`
      return { contents: src, loader: 'js' }
    })
  },
}

/** Replace a file whole: CLIs started meanwhile (or building at once) read the old or the new one. */
function writeWhole(path, data) {
  const tmp = `${path}.${process.pid}.tmp`
  writeFileSync(tmp, data)
  renameSync(tmp, path)
}

/** Chunks of an earlier build stay this long: a process started on it (a worker) may still import one. */
const STALE_CHUNK_MS = 3_600_000

async function build() {
  let esbuild
  try {
    ;({ build: esbuild } = await import('esbuild'))
  } catch (e) {
    throw new Error(`the CLI's bundle is out of date and esbuild cannot be loaded (${e.message}): run \`npm ci && npm run build\``)
  }
  const commands = join(root, 'dist', 'commands')
  const entryPoints = { main: 'hafw:main', help: join(root, 'dist', 'lib', 'help.js') }
  for (const f of readdirSync(commands, { recursive: true })) if (f.endsWith('.js')) entryPoints[join('commands', f.slice(0, -3))] = join(commands, f)
  const r = await esbuild({
    entryPoints,
    outdir: OUT,
    write: false,
    bundle: true,
    splitting: true,
    chunkNames: 'chunks/[name]-[hash]',
    platform: 'node',
    format: 'esm',
    target: 'node20',
    // Smaller files compile faster; names stay. For stack traces in the sources:
    // NODE_OPTIONS=--enable-source-maps (the maps are beside the chunks).
    minifyWhitespace: true,
    minifySyntax: true,
    sourcemap: 'linked',
    logLevel: 'error',
    // Optional dependencies that may be absent (oclif's TypeScript support, msgpackr's addon).
    external: ['typescript', 'ts-node', 'msgpackr-extract'],
    plugins: [inPlace],
    // CommonJS modules inside call require() for Node's own modules.
    banner: { js: "import { createRequire as __hafwRequire } from 'node:module'\nconst require = __hafwRequire(import.meta.url)" },
  })
  // Chunk names carry a hash of their content, so old chunks are not overwritten: they go once stale.
  const fresh = new Set()
  for (const f of r.outputFiles) {
    fresh.add(f.path)
    mkdirSync(dirname(f.path), { recursive: true })
    writeWhole(f.path, f.contents)
  }
  for (const e of readdirSync(OUT, { recursive: true, withFileTypes: true })) {
    const p = join(e.parentPath ?? e.path, e.name)
    if (!e.isFile() || fresh.has(p) || p.endsWith('.tmp')) continue
    if (!p.startsWith(join(OUT, 'chunks')) || Date.now() - statSync(p).mtimeMs > STALE_CHUNK_MS) rmSync(p, { force: true })
  }
}

/** Exactly what `oclif manifest` does, without the oclif CLI package and its dependencies. */
async function writeManifest(fp) {
  const { Plugin, settings } = await import(pathToFileURL(MAIN).href)
  settings.enableAutoTranspile = false
  const plugin = new Plugin({ root, isRoot: true, type: 'core', ignoreManifest: true, errorOnManifestCreate: true })
  await plugin.load()
  writeWhole(MANIFEST, JSON.stringify({ ...plugin.manifest, hafwFingerprint: fp }))
}

/** Make sure the bundle and the manifest match the build; rebuild them when not. */
export async function ensureBundle() {
  let fp
  try {
    fp = fingerprint()
  } catch (e) {
    throw new Error(`hafw is not built (${e.message}): run \`npm run build\``)
  }
  try {
    if (JSON.parse(readFileSync(MANIFEST, 'utf8')).hafwFingerprint === fp) return
  } catch {
    // none yet, or half written by an older build
  }
  // A stale manifest would hide or misdescribe commands.
  rmSync(MANIFEST, { force: true })
  await build()
  await writeManifest(fp)
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await ensureBundle()
  console.error(`wrote ${relative(process.cwd(), OUT)} and ${relative(process.cwd(), MANIFEST)}`)
}
