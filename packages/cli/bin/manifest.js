// oclif.manifest.json: without it oclif imports every command module (and so every package)
// on each run just to list them, most of the CLI's start-up. `npm run build` writes it; the
// CLI rewrites it when dist/ or package.json changed since (a plain `tsc -b`), so it is never stale.
import { readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const file = join(root, 'oclif.manifest.json')

/** What the manifest is made from: every compiled file (size, mtime) and package.json. */
function fingerprint() {
  const parts = []
  const add = (p) => {
    const s = statSync(p)
    parts.push(`${relative(root, p)}:${s.size}:${s.mtimeMs}`)
  }
  add(join(root, 'package.json'))
  const dist = join(root, 'dist')
  for (const e of readdirSync(dist, { recursive: true, withFileTypes: true })) {
    if (e.isFile() && e.name.endsWith('.js')) add(join(e.parentPath ?? e.path, e.name))
  }
  return parts.sort().join('\n')
}

/**
 * Make sure the manifest matches the build; rewrite it when not. When a command cannot be
 * loaded, or the package directory is read-only, leave it to oclif (it scans, and warns).
 */
export async function ensureManifest({ strict = false } = {}) {
  let fp
  try {
    fp = fingerprint()
    if (JSON.parse(readFileSync(file, 'utf8')).hafwFingerprint === fp) return
  } catch (e) {
    if (fp === undefined) {
      if (strict) throw e
      return // no dist/: oclif reports that better
    }
  }
  const { Plugin, settings } = await import('@oclif/core')
  settings.enableAutoTranspile = false
  const tmp = `${file}.${process.pid}.tmp`
  try {
    // Exactly what `oclif manifest` does, without the oclif CLI package and its dependencies.
    const plugin = new Plugin({ root, isRoot: true, type: 'core', ignoreManifest: true, errorOnManifestCreate: true })
    await plugin.load()
    writeFileSync(tmp, JSON.stringify({ ...plugin.manifest, hafwFingerprint: fp }))
    renameSync(tmp, file) // atomic: CLIs started at once may all rewrite it
  } catch (e) {
    try {
      rmSync(tmp, { force: true })
      rmSync(file, { force: true }) // a stale one would hide or misdescribe commands
    } catch {
      // read-only: nothing we can do
    }
    if (strict) throw e
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await ensureManifest({ strict: true })
  console.error(`wrote ${relative(process.cwd(), file)}`)
}
