/**
 * A lab test's own site: a scratch folder with its own hafw state dir (lab files, embedded
 * Redis, reports), the CLI run against it, the lab booted for an inventory, and everything
 * removed again afterwards.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { exec } from '@hafw/core'
import { loadInventory, type Model } from '@hafw/inventory'
import { labDown, labUp } from '@hafw/lab'
import { stopEmbeddedRedis } from '@hafw/queue'

export function labSite(site: string, tag: string) {
  const dir = mkdtempSync(join(tmpdir(), `hafw-${tag}-`))
  const stateDir = join(dir, 'state')
  const env = { ...process.env, HAFW_STATE_DIR: stateDir }
  return {
    dir,
    stateDir,
    env,
    /** the built CLI with this site's state dir; never throws on a non-zero exit */
    cli: (args: string[], timeoutMs = 240_000) => exec(process.execPath, ['packages/cli/bin/run.js', ...args], { env, allowFail: true, timeoutMs }),
    /** boot the lab for an inventory; in-process calls (labExec, runDrillJob, ...) use this state dir too */
    async up(file: string, timeoutMs = 540_000): Promise<Model> {
      process.env.HAFW_STATE_DIR = stateDir
      const model = await loadInventory(file)
      await labUp(model, () => undefined, AbortSignal.timeout(timeoutMs))
      return model
    },
    /** the lab, the embedded Redis and the folder gone, whatever state the tests left */
    async down(): Promise<void> {
      await labDown(site, () => undefined).catch(() => undefined)
      await stopEmbeddedRedis(join(stateDir, 'redis')).catch(() => undefined)
      delete process.env.HAFW_STATE_DIR
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
