/**
 * A minimal PNG decoder (8-bit RGB/RGBA, non-interlaced: what Chromium's --screenshot writes),
 * on node:zlib only, so tests can look at a screenshot's pixels without a new dependency.
 */
import { inflateSync } from 'node:zlib'

export interface Image {
  width: number
  height: number
  /** RGBA, 4 bytes per pixel */
  rgba: Buffer
}

export function decodePng(buf: Buffer): Image {
  if (buf.subarray(0, 8).toString('hex') !== '89504e470d0a1a0a') throw new Error('not a PNG')
  let width = 0
  let height = 0
  let depth = 0
  let type = 0
  let interlace = 0
  const idat: Buffer[] = []
  for (let off = 8; off < buf.length; ) {
    const len = buf.readUInt32BE(off)
    const kind = buf.toString('latin1', off + 4, off + 8)
    const data = buf.subarray(off + 8, off + 8 + len)
    if (kind === 'IHDR') {
      width = data.readUInt32BE(0)
      height = data.readUInt32BE(4)
      depth = data[8]!
      type = data[9]!
      interlace = data[12]!
    } else if (kind === 'IDAT') idat.push(data)
    else if (kind === 'IEND') break
    off += 12 + len
  }
  if (depth !== 8 || (type !== 2 && type !== 6) || interlace !== 0) throw new Error(`unsupported PNG: depth ${depth}, colour type ${type}, interlace ${interlace}`)
  const bpp = type === 6 ? 4 : 3
  const stride = width * bpp
  const raw = inflateSync(Buffer.concat(idat))
  const px = Buffer.alloc(stride * height)
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]!
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1))
    const out = y * stride
    for (let x = 0; x < stride; x++) {
      const a = x >= bpp ? px[out + x - bpp]! : 0
      const b = y > 0 ? px[out - stride + x]! : 0
      const c = x >= bpp && y > 0 ? px[out - stride + x - bpp]! : 0
      let pred = 0
      if (filter === 1) pred = a
      else if (filter === 2) pred = b
      else if (filter === 3) pred = (a + b) >> 1
      else if (filter === 4) {
        const p = a + b - c
        const pa = Math.abs(p - a)
        const pb = Math.abs(p - b)
        const pc = Math.abs(p - c)
        pred = pa <= pb && pa <= pc ? a : pb <= pc ? b : c
      } else if (filter !== 0) throw new Error(`bad PNG filter ${filter} on row ${y}`)
      px[out + x] = (line[x]! + pred) & 0xff
    }
  }
  if (bpp === 4) return { width, height, rgba: px }
  const rgba = Buffer.alloc(width * height * 4)
  for (let i = 0, j = 0; i < px.length; i += 3, j += 4) {
    rgba[j] = px[i]!
    rgba[j + 1] = px[i + 1]!
    rgba[j + 2] = px[i + 2]!
    rgba[j + 3] = 255
  }
  return { width, height, rgba }
}

/** Colour statistics of a region: distinct colours, share of non-white pixels. */
export function colourStats(img: Image, region = { x: 0, y: 0, w: img.width, h: img.height }) {
  const colours = new Set<number>()
  let nonWhite = 0
  let n = 0
  for (let y = region.y; y < region.y + region.h; y++) {
    for (let x = region.x; x < region.x + region.w; x++) {
      const i = (y * img.width + x) * 4
      const r = img.rgba[i]!
      const g = img.rgba[i + 1]!
      const b = img.rgba[i + 2]!
      colours.add((r << 16) | (g << 8) | b)
      if (r < 245 || g < 245 || b < 245) nonWhite++
      n++
    }
  }
  return { distinct: colours.size, nonWhite: nonWhite / n }
}

/** How many pixels are within tol of the colour (e.g. the red of reset bars). */
export function hasColour(img: Image, [r, g, b]: [number, number, number], tol = 12): number {
  let count = 0
  for (let i = 0; i < img.rgba.length; i += 4) {
    if (Math.abs(img.rgba[i]! - r) <= tol && Math.abs(img.rgba[i + 1]! - g) <= tol && Math.abs(img.rgba[i + 2]! - b) <= tol) count++
  }
  return count
}
