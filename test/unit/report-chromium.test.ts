/**
 * The HTML report as a browser shows it: headless Chromium (Debian's `chromium`, installed by
 * scripts/deps.sh) renders it to a PNG, and the pixels must show a real page: many colours,
 * the verdict badge's colour, the red of reset flows. Set HAFW_SCREENSHOT_DIR to keep the PNGs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { execFile } from 'node:child_process'
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { which } from '@hafw/core'
import type { DrillResult } from '@hafw/drill'
import { renderHtml } from '@hafw/report'
import { colourStats, decodePng, hasColour, type Image } from '../support/png.js'

const load = (name: string) => JSON.parse(readFileSync(`test/fixtures/drill/${name}.json`, 'utf8')) as DrillResult
const WIDTH = 1200
const HEIGHT = 1600
let chromium: string
let dir: string

beforeAll(async () => {
  const c = (await which('chromium')) ?? (await which('chromium-browser'))
  if (!c) throw new Error('chromium is not installed: run scripts/deps.sh (or apt-get install -y chromium)')
  chromium = c
  dir = mkdtempSync(join(tmpdir(), 'hafw-shot-'))
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** Render one HTML string to a PNG in a fresh profile, nothing fetched, nothing kept. */
function screenshot(name: string, html: string): Promise<Image> {
  const page = join(dir, `${name}.html`)
  const png = join(dir, `${name}.png`)
  const profile = mkdtempSync(join(dir, 'profile-'))
  writeFileSync(page, html)
  const args = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', `--user-data-dir=${profile}`, `--screenshot=${png}`, `--window-size=${WIDTH},${HEIGHT}`, `file://${page}`]
  return new Promise((resolve, reject) => {
    execFile(chromium, args, { timeout: 120_000 }, (err, _out, stderr) => {
      rmSync(profile, { recursive: true, force: true })
      if (err) return reject(new Error(`chromium: ${err.message}\n${stderr.slice(-2000)}`))
      if (process.env.HAFW_SCREENSHOT_DIR) copyFileSync(png, join(process.env.HAFW_SCREENSHOT_DIR, `${name}.png`))
      try {
        resolve(decodePng(readFileSync(png)))
      } catch (e) {
        reject(e)
      }
    })
  })
}

describe('HTML report in headless Chromium', () => {
  it('a blank page is recognised as blank (the check below means something)', async () => {
    const img = await screenshot('blank', '<!DOCTYPE html><html><body></body></html>')
    expect(img.width).toBe(WIDTH)
    const s = colourStats(img)
    expect(s.distinct).toBeLessThanOrEqual(2)
    expect(s.nonWhite).toBeLessThan(0.001)
  }, 150_000)

  it('renders the passing graceful drill: header, charts and tables, not a blank page', async () => {
    const img = await screenshot('edge1-graceful-pass', renderHtml(load('edge1-graceful-pass')))
    expect([img.width, img.height]).toEqual([WIDTH, HEIGHT])
    const all = colourStats(img)
    expect(all.distinct).toBeGreaterThan(200) // anti-aliased text and charts
    expect(all.nonWhite).toBeGreaterThan(0.04)
    // every band of the page has content: header, the charts, the tables further down
    for (let y = 0; y < HEIGHT; y += 400) expect(colourStats(img, { x: 0, y, w: WIDTH, h: 400 }).distinct).toBeGreaterThan(50)
    expect(hasColour(img, [0x1a, 0x7f, 0x37])).toBeGreaterThan(1500) // the green PASS badge
    expect(hasColour(img, [0xd4, 0x76, 0x0a])).toBeGreaterThan(1500) // the gap bars of 20 flows
    // nothing reset: the only red is the legend's 14x10 "flow reset" swatch, once per flow chart
    expect(hasColour(img, [0xcf, 0x22, 0x2e], 20)).toBeLessThan(2 * 14 * 10 + 20)
  }, 150_000)

  it('renders the failing crash drill with its reset flows in red', async () => {
    const img = await screenshot('edge1-crash-sync-blocked', renderHtml(load('edge1-crash-sync-blocked')))
    expect(colourStats(img).distinct).toBeGreaterThan(200)
    expect(hasColour(img, [0xcf, 0x22, 0x2e])).toBeGreaterThan(5000) // FAIL badge + 10 long red bars + red rows
  }, 150_000)
})
